"""What each LUT entry costs inside a whole network: its median less the runtime's fixed per-invocation cost.

An op timed alone pays, every run, the runtime's fixed cost of an invocation (the call, setting up the run,
binding its input and output), which a whole network pays once per run. The agent measures it on the device with
a minimal graph (device_agents/overhead.py), and the LUT serves it with each entry (`invocation_overhead.fixed_us`).
A network's prediction is

    sum over its ops of (median_us - fixed_us)  +  fixed_us

which counts the fixed cost once per network. The agent also measures each op's boundary overhead at its input and
output shapes (`us`, `input_us`, `output_us`: the fixed cost plus onnxruntime's layout conversions at the op's
edges); those stay in the LUT for inspection but are not subtracted, because a whole network keeps paying about
half of them: onnxruntime leaves 8 - 13 layout conversions inside a 22-layer network (around grouped convolutions'
channel shuffles and residual additions), so subtracting every boundary predicts networks too fast.

Where some entry has no fixed cost (an agent that does not measure it, a LUT from an older agent), every
prediction is the raw sum of medians, so that two networks are never predicted under different models. The raw
medians stay in the LUT and `LutCosts.raw()` predicts with them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fbnet_core.errors import LutFormatError, MissingLutEntries

OVERHEAD_FIELD = "invocation_overhead"


@dataclass(frozen=True)
class InvocationOverhead:
    """The per-invocation overhead of one LUT entry, in us: `fixed_us`, the fixed cost of any invocation; `us`,
    the op's whole boundary overhead, and its sides (a run whose input, or output, has the op's shape)."""

    us: float
    input_us: float
    output_us: float
    fixed_us: float | None

    @classmethod
    def from_json(cls, payload: object) -> InvocationOverhead:
        if not isinstance(payload, Mapping):
            raise LutFormatError(f"'{OVERHEAD_FIELD}' must be an object, got {type(payload).__name__}")
        try:
            fixed = payload.get("fixed_us")
            return cls(
                float(payload["us"]),
                float(payload["input_us"]),
                float(payload["output_us"]),
                None if fixed is None else float(fixed),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LutFormatError(
                f"'{OVERHEAD_FIELD}' needs numeric us, input_us and output_us: {exc}"
            ) from exc


@dataclass(frozen=True)
class LutCosts:
    """A LUT's medians (key -> us) and, when every entry has its fixed invocation cost, their overheads."""

    median_us: Mapping[str, float]
    overhead: Mapping[str, InvocationOverhead] | None = None
    raw_reason: str = "no overhead figures"  # why `overhead` is None

    @classmethod
    def from_body(cls, lut_body: Mapping[str, object]) -> LutCosts:
        """From a `GET /lut/{device}` body (or a LUT file)."""
        entries = lut_body.get("entries")
        if not isinstance(entries, Mapping):
            raise LutFormatError("the LUT has no 'entries' object (expected a GET /lut/{device} body)")
        return cls.from_entries(entries)

    @classmethod
    def from_entries(cls, entries: Mapping[str, Mapping[str, Any]]) -> LutCosts:
        """From the `entries` of a `GET /lut/{device}` body."""
        try:
            median_us = {str(key): float(entry["median_us"]) for key, entry in entries.items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise LutFormatError(f"a LUT entry has no numeric 'median_us': {exc}") from exc
        overhead = {
            key: InvocationOverhead.from_json(entry[OVERHEAD_FIELD])
            for key, entry in entries.items()
            if entry.get(OVERHEAD_FIELD) is not None
        }
        lacking = sorted(key for key in entries if key not in overhead or overhead[key].fixed_us is None)
        if lacking:
            reason = (
                f"{len(lacking)} of {len(entries)} entries have no fixed invocation cost (e.g. {lacking[0]})"
            )
            return cls(median_us, None, reason)
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

    def _fixed_us(self, key: str) -> float:
        assert self.overhead is not None
        fixed_us = self.overhead[key].fixed_us
        assert fixed_us is not None  # from_entries keeps overheads only where every entry has it
        return fixed_us

    def in_network_us(self, key: str) -> float:
        """What the op adds to a network: its median, less the fixed invocation cost (never below 0: where noise
        puts the cost above a tiny op's median, the op adds nothing measurable)."""
        if self.overhead is None:
            return self.median_us[key]
        return max(0.0, self.median_us[key] - self._fixed_us(key))

    def network_once_us(self, first_key: str) -> float:
        """The invocation cost a network whose first op is this one pays once per run (0 for raw sums):
        the fixed cost measured with its first op."""
        if self.overhead is None:
            return 0.0
        return self._fixed_us(first_key)

    def describe(self) -> dict[str, Any]:
        """The cost model, for a search summary or a validation file."""
        if self.overhead is None:
            return {"prediction": "sum of medians", "reason": self.raw_reason}
        fixed = sorted(self._fixed_us(key) for key in self.overhead)
        return {
            "prediction": "sum of (median - fixed invocation cost) + the fixed cost once per network",
            "entries": len(self.median_us),
            "median_fixed_us": fixed[len(fixed) // 2],
        }


def as_lut_costs(lut: Mapping[str, float] | LutCosts) -> LutCosts:
    """A plain key -> median mapping is a LUT without overhead figures (raw sums)."""
    return lut if isinstance(lut, LutCosts) else LutCosts(dict(lut))
