"""The timing engine shared by every backend: settle, then sample until the median is known to 1%.

Pure: the clock, the sleep and the run are injected, so the stopping rules are tested on a fake clock.
Runs during which the OS switched the process out (where a preemption counter is given) are discarded and
counted: on a shared machine they measure the neighbours, not the op. If too few clean runs remain at the
time cap, all runs are kept and the measurement says so.
Warm-up runs until two consecutive windows agree (with a floor of runs and seconds, and a cap); timed runs
go on until the 95% confidence interval of the median (order statistics, distribution-free) lies within
`target_ci_rel` of the median, or a time cap. Raw samples are always kept: the server aggregates them.
With a speed reference (`SpeedReference`), every timed run of the op is followed by a fixed reference workload
and the sample is the op's time scaled by how fast the reference ran just then: a shared machine whose speed
drifts in phases (a neighbour's job, the hypervisor) then moves op and reference alike, and the ratio stays.
Each timed run is then preceded by an untimed one, so that it is warm although the reference evicted the op, and
each timed reference run by an untimed one of the reference, for the same reason.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from device_agents.errors import OpFailedError

Clock = Callable[[], float]  # monotonic seconds
TimeOneRun = Callable[[], float]  # runs the op once, returns its duration in seconds
# Cumulative count of involuntary context switches of the measuring process: a run during which it grew was
# descheduled, so its wall time includes someone else's work (see system.involuntary_switches).
PreemptionCounter = Callable[[], int]

# Two-sided 95% normal quantile: the binomial(n, 1/2) rank interval of the median uses it.
_Z95 = 1.959964


@dataclass(frozen=True)
class TimingPolicy:
    warmup_min_runs: int = 5
    warmup_min_s: float = 0.05
    warmup_max_s: float = 0.5
    warmup_window: int = 5  # settled when the medians of the last two windows differ by <= settle_rel
    settle_rel: float = 0.02
    min_runs: int = 20
    min_s: float = 0.5  # spread the samples over time: a burst of interference then moves the median less
    max_s: float = 1.0  # per-op time cap for the timed phase
    max_runs: int = 20_000
    target_ci_rel: float = 0.01
    cooldown_s: float = 0.0  # idle before warm-up, so a hot previous op does not throttle this one
    op_timeout_s: float = 120.0  # an op whose floor of runs takes longer than this is failed, not waited on
    remeasure_unstable: int = 1  # measure an op flagged unstable again (up to this often), keep the steadiest

    def __post_init__(self) -> None:
        if self.warmup_min_runs < 1 or self.min_runs < 6 or self.warmup_window < 1:
            raise ValueError("warmup_min_runs >= 1, warmup_window >= 1 and min_runs >= 6 are required")
        if not 0 < self.target_ci_rel < 1 or self.max_s <= 0 or self.max_runs < self.min_runs:
            raise ValueError("0 < target_ci_rel < 1, max_s > 0 and max_runs >= min_runs are required")

    def as_dict(self) -> dict[str, float | int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class SpeedReference:
    """A fixed workload timed right after every timed run of the op: the machine's speed at that moment.

    `time_runs(k)` runs it k times back to back and returns the seconds; `nominal_s` is one run at the speed the
    LUT is expressed in (calibrated once per device and setting: device_agents/speed_reference.py). The
    reference is repeated so that it lasts about as long as the op (up to `max_repeats`): both then see the
    same stretch of the machine's speed."""

    time_runs: Callable[[int], float]
    nominal_s: float
    max_repeats: int = 64


@dataclass(frozen=True)
class SpeedCorrection:
    """What a speed reference did to one measurement (provenance; the samples are already corrected)."""

    repeats: int
    nominal_us: float
    reference_median_us: float  # one reference run, median over the op's clean timed runs
    uncorrected_median_us: float  # the op's median before the correction

    def as_dict(self) -> dict[str, float | int]:
        return {name: round(getattr(self, name), 3) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class Measurement:
    samples_us: list[float]
    warmup_runs: int
    warmup_s: float
    warmup_settled: bool
    timed_s: float
    ci_rel: float  # half-width of the median's 95% CI over the median, at the stop
    stop_reason: str  # "ci" | "time_cap" | "max_runs"
    preempted_runs_discarded: int = 0
    preempted_runs_kept: int = 0  # > 0 only when clean runs were too few at the cap
    speed: SpeedCorrection | None = None
    overhead: dict[str, Any] | None = None  # the runtime's per-invocation overhead for the op (overhead.py)

    @property
    def timed_runs(self) -> int:
        return len(self.samples_us)


def median_ci_rel(samples: list[float]) -> float:
    """Relative half-width of the distribution-free 95% CI of the median (binomial rank interval).

    The ranks n/2 -+ z*sqrt(n)/2 bound the median with 95% confidence whatever the distribution; the
    larger side over the median is returned, so 0.01 means both ends are within 1%."""
    n = len(samples)
    if n < 6:
        return math.inf
    ordered = sorted(samples)
    half_span = _Z95 * math.sqrt(n) / 2
    low = max(0, math.floor(n / 2 - half_span))
    high = min(n - 1, math.ceil(n / 2 + half_span) - 1)
    median = statistics.median(ordered)
    if median <= 0:
        return math.inf
    return max(median - ordered[low], ordered[high] - median) / median


def timed_by_clock(run_once: Callable[[], object], clock: Clock) -> TimeOneRun:
    """Wrap a host-synchronous run: its duration is the clock's difference around it."""

    def time_one_run() -> float:
        start = clock()
        run_once()
        return clock() - start

    return time_one_run


def _check_deadline(op_started: float, policy: TimingPolicy, clock: Clock) -> None:
    if clock() - op_started > policy.op_timeout_s:
        raise OpFailedError(f"timed out: the op ran longer than op_timeout_s={policy.op_timeout_s:g}")


def _timed_run(time_one_run: TimeOneRun, preempted: PreemptionCounter | None) -> tuple[float, bool]:
    before = preempted() if preempted is not None else 0
    seconds = time_one_run()
    return seconds, preempted is not None and preempted() != before


def _warm_up(
    time_one_run: TimeOneRun, policy: TimingPolicy, clock: Clock, preempted: PreemptionCounter | None
) -> tuple[int, float, bool, float]:
    """(runs, seconds, settled, median seconds of the last window of undisturbed runs)."""
    started = clock()
    time_one_run()
    runs = 1
    # The cap counts from after the first run: that one carries lazy initialisation and may take seconds.
    cap_started = clock()
    window = policy.warmup_window
    durations: list[float] = []  # undisturbed runs only: a preempted run says nothing about settling
    while True:
        seconds, disturbed = _timed_run(time_one_run, preempted)
        runs += 1
        if not disturbed:
            durations.append(seconds)
        _check_deadline(started, policy, clock)
        elapsed = clock() - started
        if len(durations) >= 2 * window and runs >= policy.warmup_min_runs and elapsed >= policy.warmup_min_s:
            previous = statistics.median(durations[-2 * window : -window])
            last = statistics.median(durations[-window:])
            if previous > 0 and abs(last - previous) / previous <= policy.settle_rel:
                return runs, elapsed, True, last
        if clock() - cap_started >= policy.warmup_max_s and runs >= policy.warmup_min_runs:
            typical = statistics.median(durations[-window:]) if durations else seconds
            return runs, elapsed, False, typical


class _Pairing:
    """The op's run followed by the reference's; each run returns the op's time at the reference's nominal speed."""

    def __init__(self, time_one_run: TimeOneRun, reference: SpeedReference, op_typical_s: float) -> None:
        reference.time_runs(1)  # the reference ran last an op ago: one untimed run brings it back into cache
        once_s = reference.time_runs(3) / 3
        self.repeats = max(1, min(reference.max_repeats, round(op_typical_s / once_s))) if once_s > 0 else 1
        self._time_op = time_one_run
        self._reference = reference
        self._log: list[tuple[float, float]] = []  # (op seconds, one reference run's seconds), per timed run

    def run(self) -> float:
        # The reference's run evicted the op's code and data, which inside a network stay warm (docs/agents.md, the
        # speed reference): one untimed run first, so the timed one is a warm run, as without a reference.
        self._time_op()
        op_s = self._time_op()
        # Likewise the op evicted the reference's weights (a network of the space's size fills the core's cache):
        # timed cold, the reference would run slower after larger ops and shrink exactly their samples.
        self._reference.time_runs(1)
        reference_s = self._reference.time_runs(self.repeats) / self.repeats
        self._log.append((op_s, reference_s))
        return op_s * self._reference.nominal_s / reference_s if reference_s > 0 else op_s

    def correction(self, clean: list[bool]) -> SpeedCorrection:
        """Medians over the runs whose samples were kept (`clean`, aligned with the timed runs)."""
        kept = [pair for pair, ok in zip(self._log, clean, strict=True) if ok] or self._log
        return SpeedCorrection(
            repeats=self.repeats,
            nominal_us=self._reference.nominal_s * 1e6,
            reference_median_us=statistics.median(ref_s for _, ref_s in kept) * 1e6,
            uncorrected_median_us=statistics.median(op_s for op_s, _ in kept) * 1e6,
        )


def measure(
    time_one_run: TimeOneRun,
    policy: TimingPolicy,
    clock: Clock = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
    preempted: PreemptionCounter | None = None,
    reference: SpeedReference | None = None,
) -> Measurement:
    """Cool down, warm up until settled, then sample until the median's 95% CI is within the target."""
    if policy.cooldown_s > 0:
        sleep(policy.cooldown_s)
    op_started = clock()
    warmup_runs, warmup_s, settled, op_typical_s = _warm_up(time_one_run, policy, clock, preempted)
    pairing = _Pairing(time_one_run, reference, op_typical_s) if reference is not None else None
    if pairing is not None:
        time_one_run = pairing.run
    started = clock()
    runs: list[tuple[float, bool]] = []
    samples_s: list[float] = []  # the clean ones
    next_check = policy.min_runs
    ci_rel = math.inf
    while True:
        seconds, disturbed = _timed_run(time_one_run, preempted)
        runs.append((seconds, disturbed))
        if not disturbed:
            samples_s.append(seconds)
        _check_deadline(op_started, policy, clock)
        n = len(samples_s)
        elapsed = clock() - started
        # The CI needs a sort: check at geometrically spaced counts so tiny ops stay O(n log n) overall.
        if n >= next_check and elapsed >= policy.min_s:
            ci_rel = median_ci_rel(samples_s)
            next_check = max(n + 1, int(n * 1.1))
            if ci_rel <= policy.target_ci_rel:
                reason = "ci"
                break
        if elapsed >= policy.max_s and len(runs) >= policy.min_runs:
            reason = "time_cap"
            break
        if len(runs) >= policy.max_runs:
            reason = "max_runs"
            break
    discarded = len(runs) - len(samples_s)
    kept = 0
    if len(samples_s) < policy.min_runs:  # a machine so busy that clean runs are rare: keep every run
        samples_s, kept, discarded = [seconds for seconds, _ in runs], discarded, 0
    if reason != "ci":
        ci_rel = median_ci_rel(samples_s)
    speed = pairing.correction([kept > 0 or not disturbed for _, disturbed in runs]) if pairing else None
    return Measurement(
        samples_us=[round(s * 1e6, 3) for s in samples_s],  # nanosecond resolution: the clock's
        warmup_runs=warmup_runs,
        warmup_s=warmup_s,
        warmup_settled=settled,
        timed_s=clock() - started,
        ci_rel=ci_rel,
        stop_reason=reason,
        preempted_runs_discarded=discarded,
        preempted_runs_kept=kept,
        speed=speed,
    )
