"""What each LUT entry costs inside a whole network: its median less the runtime's per-invocation overhead.

An op timed alone pays, every run, what a whole network pays once per run: the runtime's fixed cost of an
invocation (the call, the session's set-up, binding and allocating its input and output) and the conversions at
its boundary (onnxruntime's CPU provider reorders NCHW tensors to its blocked layout at an op's input and back at
its output; inside a network they stay blocked). The agent measures that overhead per op on the device, for the
op's input and output tensor shapes (device_agents/overhead.py), and the LUT serves it with the entry
(`invocation_overhead`: `us`, and its `input_us` and `output_us` sides). A network's prediction is then

    sum over its ops of (median_us - overhead_us)  +  (input_us of its first op + output_us of its last op) / 2

which counts the overhead once per network. Where some entry has no overhead figure (an agent that does not
measure it, a LUT from an older agent), every prediction is the raw sum of medians, so that two networks are never
predicted under different models. The raw medians stay in the LUT and `LutCosts.raw()` predicts with them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from search_client.errors import LutFormatError, MissingLutEntries

OVERHEAD_FIELD = "invocation_overhead"


@dataclass(frozen=True)
class InvocationOverhead:
    """The per-invocation overhead of one LUT entry, in us: `us` for the op, and each side's share: the overhead
    of a run whose input (output) tensor has the op's input (output) shape."""

    us: float
    input_us: float
    output_us: float

    @classmethod
    def from_json(cls, payload: object) -> InvocationOverhead:
        if not isinstance(payload, Mapping):
            raise LutFormatError(f"'{OVERHEAD_FIELD}' must be an object, got {type(payload).__name__}")
        try:
            return cls(float(payload["us"]), float(payload["input_us"]), float(payload["output_us"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise LutFormatError(
                f"'{OVERHEAD_FIELD}' needs numeric us, input_us and output_us: {exc}"
            ) from exc


@dataclass(frozen=True)
class LutCosts:
    """A LUT's medians (key -> us) and, when every entry has one, their per-invocation overheads."""

    median_us: Mapping[str, float]
    overhead: Mapping[str, InvocationOverhead] | None = None
    raw_reason: str = "no overhead figures"  # why `overhead` is None

    @classmethod
    def from_entries(cls, entries: Mapping[str, Mapping[str, Any]]) -> LutCosts:
        """From the `entries` of a `GET /lut/{device}` body."""
        try:
            median_us = {str(key): float(entry["median_us"]) for key, entry in entries.items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise LutFormatError(f"a LUT entry has no numeric 'median_us': {exc}") from exc
        lacking = sorted(key for key, entry in entries.items() if entry.get(OVERHEAD_FIELD) is None)
        if lacking:
            reason = f"{len(lacking)} of {len(entries)} entries have no overhead figure (e.g. {lacking[0]})"
            return cls(median_us, None, reason)
        overhead = {
            key: InvocationOverhead.from_json(entry[OVERHEAD_FIELD]) for key, entry in entries.items()
        }
        return cls(median_us, overhead)

    def raw(self) -> LutCosts:
        """The same LUT predicting raw sums of medians."""
        return LutCosts(self.median_us, None, "raw sums asked for")

    @property
    def overhead_once(self) -> bool:
        return self.overhead is not None

    def check_has(self, keys: Iterable[str]) -> None:
        """Every missing key reported at once, so one `dnas lut request` can fill them all."""
        missing = sorted({key for key in keys if key not in self.median_us})
        if missing:
            raise MissingLutEntries(missing)

    def in_network_us(self, key: str) -> float:
        """What the op adds to a network: its median, less its per-invocation overhead (never below 0: where the
        two measurements' noise puts the overhead above a tiny op's median, the op adds nothing measurable)."""
        if self.overhead is None:
            return self.median_us[key]
        return max(0.0, self.median_us[key] - self.overhead[key].us)

    def network_once_us(self, first_key: str, last_key: str) -> float:
        """The overhead a network whose first and last ops are these pays once per run (0 for raw sums)."""
        if self.overhead is None:
            return 0.0
        return (self.overhead[first_key].input_us + self.overhead[last_key].output_us) / 2.0

    def describe(self) -> dict[str, Any]:
        """The cost model, for a search summary or a validation file."""
        if self.overhead is None:
            return {"prediction": "sum of medians", "reason": self.raw_reason}
        overheads = sorted(value.us for value in self.overhead.values())
        return {
            "prediction": "sum of (median - invocation overhead) + the overhead once per network",
            "entries": len(self.median_us),
            "median_overhead_us": overheads[len(overheads) // 2],
        }


def as_lut_costs(lut: Mapping[str, float] | LutCosts) -> LutCosts:
    """A plain key -> median mapping is a LUT without overhead figures (raw sums)."""
    return lut if isinstance(lut, LutCosts) else LutCosts(dict(lut))
