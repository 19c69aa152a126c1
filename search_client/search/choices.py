"""The search's named choices (supernet modes, latency-loss forms), without torch: the command line offers them
in its help, which must not wait for torch to import."""

from __future__ import annotations

from typing import Literal

SupernetMode = Literal["weighted", "single_path"]
SUPERNET_MODES: tuple[SupernetMode, ...] = ("weighted", "single_path")
DEFAULT_PATH_GROUPS = 1

LossForm = Literal["multiplicative", "additive", "none"]
LOSS_FORMS: tuple[LossForm, ...] = ("multiplicative", "additive", "none")
