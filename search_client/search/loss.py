"""The FBNet search loss: cross-entropy combined with the expected latency from the LUT.

`multiplicative` is the paper's CE * alpha * log(LAT)^beta, LAT in a unit where every network takes more than
one unit (the paper's "e.g. ms"; `latency_unit_ms` picks another, e.g. 0.01 for a CPU LUT of 0.1-1 ms networks);
`additive` is CE + lambda * LAT for LUTs whose networks run under 1 ms; `none` is CE alone, the latency-unaware
baseline (alpha = 0 in the paper's RQ2: the multiplicative form with alpha = 0 would zero the whole loss).

`label_smoothing` keeps the search's cross-entropy away from 0. The multiplicative form trades *relative* CE
against beta / log(LAT) times relative latency, and was tuned where the search CE is 1 - 2 (ImageNet); on an easy
data set (digits: CE ~ 0.1) every small gain in CE is a large relative one and the latency term barely pulls.
Smoothing epsilon over K classes puts a floor of H((1 - eps + eps / K, eps / K, ...)) under the CE (K = 10:
0.50 at 0.1, 0.87 at 0.2, 1.18 at 0.3), which restores the paper's balance; the target's argmax is still the label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from search_client.errors import InvalidSearchConfigError, LatencyLossUndefinedError

LossForm = Literal["multiplicative", "additive", "none"]
LOSS_FORMS: tuple[LossForm, ...] = ("multiplicative", "additive", "none")


@dataclass(frozen=True)
class LossConfig:
    form: LossForm = "multiplicative"
    alpha: float = 0.2
    beta: float = 0.6
    lambda_per_ms: float = 0.1
    latency_unit_ms: float = 1.0
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_smoothing < 1.0:
            raise InvalidSearchConfigError(f"label smoothing must be in [0, 1), got {self.label_smoothing}")

    def check_defined(self, min_latency_ms: float) -> None:
        """Refuse, before training, a LUT on which log(LAT) can be <= 0 for some architecture."""
        if self.form == "multiplicative" and min_latency_ms <= self.latency_unit_ms:
            raise LatencyLossUndefinedError(
                f"the fastest architecture in this LUT takes {min_latency_ms:.3f} ms; the multiplicative loss "
                f"CE * alpha * log(LAT)^beta needs LAT > 1 unit ({self.latency_unit_ms:g} ms) everywhere. Use "
                "--latency-loss additive (CE + lambda * LAT_ms), or a smaller --latency-unit-ms."
            )


def cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, config: LossConfig, reduction: str = "mean"
) -> torch.Tensor:
    """The search's cross-entropy, label-smoothed as `config` says."""
    return F.cross_entropy(logits, labels, reduction=reduction, label_smoothing=config.label_smoothing)


def search_loss(
    cross_entropy: torch.Tensor, expected_latency_ms: torch.Tensor, config: LossConfig
) -> torch.Tensor:
    """Combine the batch-mean cross-entropy and the batch-mean expected latency (both scalars) into one loss."""
    if config.form == "multiplicative":
        latency_units = expected_latency_ms / config.latency_unit_ms
        return cross_entropy * config.alpha * torch.log(latency_units) ** config.beta
    if config.form == "additive":
        return cross_entropy + config.lambda_per_ms * expected_latency_ms
    return cross_entropy
