"""Which space parameter a LUT was measured for, when it lacks the ops of the space a command needs.

A LUT holds every entry its device measured, for any number of spaces; a space needs about a hundred of them.
When some are missing, listing the keys tells a user nothing; the usual cause is one parameter that differs
between the LUT request and the search (classes, head width, stride schedule...). `lut_space_mismatch` finds it
by reading the fixed ops' keys (stem, head, pool + fc) the LUT has and checking which one-field change of the
space the LUT covers completely.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace

from fbnet_core.errors import FbnetLutError
from fbnet_core.keys import HEAD_KEY_PATTERN, POOL_FC_KEY_PATTERN, STEM_KEY_PATTERN, ops_for_space
from fbnet_core.space import FBNET_STAGES, SpaceParams, build_space

_LAST_STAGE_CHANNELS = FBNET_STAGES[-1][0]


@dataclass(frozen=True)
class SpaceMismatch:
    """The one field in which the LUT's space differs from the space a command needs."""

    field: str
    lut_value: object
    needed_value: object

    def __str__(self) -> str:
        return f"the LUT was measured for {self.field}={self.lut_value}, this space needs {self.needed_value}"


def _numbers(pattern: re.Pattern[str], keys: Collection[str], group: str) -> set[int]:
    return {int(match[group]) for key in keys if (match := pattern.fullmatch(key))}


def _alternatives(params: SpaceParams, keys: Collection[str]) -> Iterator[tuple[str, object]]:
    """One-field changes of `params` that the LUT's fixed ops suggest, most common causes first."""
    for classes in sorted(_numbers(POOL_FC_KEY_PATTERN, keys, "out_channels")):
        yield "num_classes", classes
    yield "small_input", not params.small_input
    for channels in sorted(_numbers(HEAD_KEY_PATTERN, keys, "out_channels")):
        yield "head_channels", channels
    for resolution in sorted(_numbers(STEM_KEY_PATTERN, keys, "height")):
        yield "resolution", resolution
    # The head's input is the last stage: make_divisible(352 x width), exact for the usual widths.
    for channels in sorted(_numbers(HEAD_KEY_PATTERN, keys, "in_channels")):
        yield "width", channels / _LAST_STAGE_CHANNELS


def lut_space_mismatch(params: SpaceParams, lut_keys: Collection[str]) -> SpaceMismatch | None:
    """The field whose other value the LUT covers completely, or None when no single field explains the gap."""
    for field, value in _alternatives(params, lut_keys):
        if getattr(params, field) == value:
            continue
        try:
            candidate = build_space(replace(params, **{field: value}))
        except FbnetLutError:
            continue  # e.g. a resolution the other stride schedule cannot take
        if all(op.key in lut_keys for op in ops_for_space(candidate)):
            return SpaceMismatch(field, value, getattr(params, field))
    return None
