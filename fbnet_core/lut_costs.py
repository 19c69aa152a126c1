"""What each LUT entry costs inside a whole network: its median less the invocation overhead a network does not pay.

An op timed alone pays, every run, the runtime's fixed cost of an invocation (the call, setting up the run,
binding its input and output), which a whole network pays once per run. The agent measures it on the device with
a minimal graph (device_agents/overhead.py), and the LUT serves it with each entry (`invocation_overhead.fixed_us`).
The agent also measures each op's boundary overhead at its input and output shapes (`us`, `input_us`,
`output_us`): the fixed cost plus what the runtime does at the edges of a graph (onnxruntime reorders tensors into
its blocked layout at a convolution's input and back at its output). Inside a network part of that boundary work
disappears (two convolutions in a row stay blocked) and part remains (onnxruntime leaves layout conversions around
grouped convolutions' channel shuffles and residual additions). The share that disappears, `boundary_share`
(0 - 1), depends on the runtime and the device. And an op's own work (its median less the fixed cost) runs
faster or slower inside a network than alone, by a factor `work_scale` (what is in the caches differs).
network_fit.py fits both from a few whole networks measured on the device. A network's prediction is

    sum over its ops of max(0, work_scale * (median_us - fixed_us) - share * (us - fixed_us))
      + fixed_us + share * ((first op's input_us - fixed_us) + (last op's output_us - fixed_us)) / 2

which counts the fixed cost once per network and the network's own two edges once. Without a fit (scale 1,
share 0) only the fixed cost is taken out: at 224 px that is within about 5 % of whole networks on this
project's CPUs, at 16 px it over-predicts them by 4 - 30 % depending on the CPU (docs/search.md).

Where some entry has no fixed cost (a runtime the agent cannot probe: ExecuTorch, LiteRT, a phone's benchmark tool;
a LUT from an older agent), no entry's figure is used, so that two networks are never predicted under different
models: network_fit.py then fits one invocation cost for every op from the same whole networks (ExecuTorch at
16 px pays about 14 us a run, most of a small block's time), each op adds its median less that cost (never below
0) and a network pays it once. Without those networks every prediction is the raw sum of medians. The raw medians
stay in the LUT and `LutCosts.raw()` predicts with them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from fbnet_core.errors import LutFormatError, MissingLutEntries

OVERHEAD_FIELD = "invocation_overhead"
FIXED_MEASURED = "measured by the agent"


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
    # The share of each op's boundary overhead beyond the fixed cost that a network does not pay (0 - 1), the
    # factor on each op's work inside a network, and where both come from (network_fit.py).
    boundary_share: float = 0.0
    work_scale: float = 1.0
    fit_source: str = "not fitted: only the fixed cost is counted once per network"
    # Where the fixed cost comes from: the agent's probes, or one cost for every op fitted on whole networks.
    fixed_source: str = FIXED_MEASURED
    raw_asked: bool = False  # `raw()`: sums of medians, never fitted

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
        return LutCosts(
            self.median_us, None, "raw sums asked for", 0.0, 1.0, "raw sums: no overhead taken out", raw_asked=True
        )

    @property
    def overhead_once(self) -> bool:
        return self.overhead is not None

    def check_has(self, keys: Iterable[str]) -> None:
        """Every missing key reported at once, so one `dnas lut request` can fill them all."""
        missing = sorted({key for key in keys if key not in self.median_us})
        if missing:
            raise MissingLutEntries(missing)

    def with_network_fit(self, work_scale: float, share: float, source: str) -> LutCosts:
        """The same LUT predicting with each op's work scaled by `work_scale` and `share` of its boundary overhead
        (beyond the fixed cost) taken out."""
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"a boundary share is between 0 and 1, got {share}")
        if work_scale <= 0.0:
            raise ValueError(f"a work scale is above 0, got {work_scale}")
        return replace(self, boundary_share=share, work_scale=work_scale, fit_source=source)

    def with_fitted_invocation_us(self, invocation_us: float, source: str) -> LutCosts:
        """The same LUT with one invocation cost for every entry, fitted on whole networks where the agent measured
        none: each op adds its median less that cost (never below 0) and a network pays it once."""
        if invocation_us < 0.0:
            raise ValueError(f"an invocation cost is at least 0 us, got {invocation_us}")
        overhead = InvocationOverhead(invocation_us, invocation_us, invocation_us, invocation_us)
        return replace(
            self,
            overhead=dict.fromkeys(self.median_us, overhead),
            fixed_source=source,
            boundary_share=0.0,
            work_scale=1.0,
            fit_source="no boundary figures: the invocation cost is the same for every op",
        )

    def _fixed_us(self, key: str) -> float:
        assert self.overhead is not None
        fixed_us = self.overhead[key].fixed_us
        assert fixed_us is not None  # from_entries keeps overheads only where every entry has it
        return fixed_us

    def boundary_beyond_fixed_us(self, key: str) -> float:
        """The op's boundary overhead beyond the fixed cost: the part a network pays only in part (0 for raw sums)."""
        if self.overhead is None:
            return 0.0
        return max(0.0, self.overhead[key].us - self._fixed_us(key))

    def edges_beyond_fixed_us(self, first_key: str, last_key: str) -> float:
        """A network's own edges: half its first op's input side and half its last op's output side, beyond the
        fixed cost (0 for raw sums)."""
        if self.overhead is None:
            return 0.0
        input_us = self.overhead[first_key].input_us - self._fixed_us(first_key)
        output_us = self.overhead[last_key].output_us - self._fixed_us(last_key)
        return max(0.0, (input_us + output_us) / 2.0)

    def in_network_us(self, key: str) -> float:
        """What the op adds to a network: its work (median less the fixed invocation cost) scaled, less the
        boundary share (never below 0: where noise puts the overhead above a tiny op's median, the op adds nothing
        measurable)."""
        if self.overhead is None:
            return self.median_us[key]
        work_us = self.work_scale * (self.median_us[key] - self._fixed_us(key))
        return max(0.0, work_us - self.boundary_share * self.boundary_beyond_fixed_us(key))

    def network_once_us(self, first_key: str, last_key: str) -> float:
        """The invocation overhead a network running from `first_key` to `last_key` pays once per run (0 for raw
        sums): the fixed cost measured with its first op, and the boundary share of its own two edges."""
        if self.overhead is None:
            return 0.0
        return self._fixed_us(first_key) + self.boundary_share * self.edges_beyond_fixed_us(first_key, last_key)

    def summary_line(self) -> str:
        """One line for a command's output: how the entries are added up."""
        if self.overhead is None:
            return f"LUT: sums of medians ({self.raw_reason})"
        if self.fixed_source != FIXED_MEASURED:
            invocation_us = next(iter(self.overhead.values())).fixed_us
            return f"LUT: invocation cost {invocation_us:.1f} us per op, counted once per network ({self.fixed_source})"
        return (
            f"LUT: fixed invocation cost once per network, work scale {self.work_scale:.2f}, boundary share "
            f"{self.boundary_share:.2f} ({self.fit_source})"
        )

    def describe(self) -> dict[str, Any]:
        """The cost model, for a search summary or a validation file."""
        if self.overhead is None:
            return {"prediction": "sum of medians", "reason": self.raw_reason}
        fixed = sorted(self._fixed_us(key) for key in self.overhead)
        return {
            "prediction": "sum of (work scale x (median - fixed cost) - boundary share x boundary beyond it) + the "
            "network's own fixed cost and edges once",
            "entries": len(self.median_us),
            "median_fixed_us": fixed[len(fixed) // 2],
            "fixed_source": self.fixed_source,
            "boundary_share": round(self.boundary_share, 4),
            "work_scale": round(self.work_scale, 4),
            "fit_source": self.fit_source,
        }


def as_lut_costs(lut: Mapping[str, float] | LutCosts) -> LutCosts:
    """A plain key -> median mapping is a LUT without overhead figures (raw sums)."""
    return lut if isinstance(lut, LutCosts) else LutCosts(dict(lut))
