"""The timing engine's stopping rules and statistics, on a fake clock (the durations are scripted)."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from device_agents.errors import OpFailedError
from device_agents.timing import TimingPolicy, measure, median_ci_rel
from fbnet_core.stats import sample_stats


class FakeClock:
    """A clock that only moves when a scripted run 'takes' time."""

    def __init__(self) -> None:
        self.now_s = 0.0
        self.slept_s = 0.0

    def __call__(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.slept_s += seconds
        self.now_s += seconds


def scripted_runs(clock: FakeClock, durations_s):
    iterator = iter(durations_s)

    def time_one_run() -> float:
        duration = next(iterator)
        clock.now_s += duration
        return duration

    return time_one_run


def test_warmup_waits_for_a_slow_start_to_settle_and_keeps_it_out_of_the_samples():
    clock = FakeClock()
    # A cold start decaying towards a steady 1 ms (+-0.2% jitter): caches, allocator, lazy init.
    rng = np.random.default_rng(1)
    durations = [1e-3 * (1 + 4 * math.exp(-i / 8) + 0.002 * rng.standard_normal()) for i in range(100_000)]
    policy = TimingPolicy(warmup_min_runs=5, warmup_min_s=0.01, warmup_max_s=10.0, min_runs=20, min_s=0.0)
    result = measure(scripted_runs(clock, durations), policy, clock, clock.sleep)
    assert result.warmup_settled
    # Windows of 5 agree within 2% only once the decay term is below ~0.045 ms: about run 37.
    assert 30 <= result.warmup_runs <= 50
    assert result.samples_us[0] < 1060  # the cold runs stayed out of the timed samples
    assert sample_stats(result.samples_us).median_us == pytest.approx(1000, rel=0.02)
    assert result.stop_reason == "ci"
    assert result.ci_rel <= 0.01


def test_a_single_first_run_outlier_does_not_hold_the_warmup_back():
    clock = FakeClock()
    policy = TimingPolicy(warmup_min_runs=5, warmup_min_s=0.0, min_runs=20, min_s=0.0)
    result = measure(scripted_runs(clock, [3.0] + [1e-3] * 10_000), policy, clock, clock.sleep)
    assert result.warmup_runs == 1 + 2 * policy.warmup_window  # the 3 s first run does not hold it back
    assert result.samples_us == [1000.0] * result.timed_runs


def test_timed_phase_stops_as_soon_as_the_median_ci_is_within_target():
    clock = FakeClock()
    rng = np.random.default_rng(2)
    durations = (1e-3 * (1 + 0.05 * rng.standard_normal(100_000))).clip(1e-4).tolist()
    policy = TimingPolicy(warmup_min_runs=1, warmup_window=1, warmup_min_s=0.0, min_runs=10, min_s=0.0, max_s=100.0)
    result = measure(scripted_runs(clock, durations), policy, clock, clock.sleep)
    assert result.stop_reason == "ci"
    assert result.ci_rel <= policy.target_ci_rel
    # 5% noise needs roughly (1.96*1.25*0.05/0.01)^2 ~ 150 samples; far fewer than the cap allows.
    assert 50 <= result.timed_runs <= 1_000


def test_noisy_op_stops_at_the_time_cap_with_the_ci_it_reached():
    clock = FakeClock()
    rng = np.random.default_rng(3)
    durations = (1e-3 * rng.lognormal(0, 0.8, 100_000)).tolist()
    policy = TimingPolicy(warmup_min_runs=1, warmup_window=1, warmup_min_s=0.0, settle_rel=10.0, max_s=0.2)
    result = measure(scripted_runs(clock, durations), policy, clock, clock.sleep)
    assert result.stop_reason == "time_cap"
    assert result.ci_rel > policy.target_ci_rel
    assert 0.2 <= result.timed_s < 0.2 + max(durations)
    assert result.timed_runs == len(result.samples_us) >= policy.min_runs


def test_warmup_gives_up_at_its_cap_and_says_so():
    clock = FakeClock()
    alternating = [1e-3, 3e-3] * 50_000  # window medians never agree within 2%... with window 1
    policy = TimingPolicy(warmup_window=1, warmup_max_s=0.05, max_s=0.05)
    result = measure(scripted_runs(clock, alternating), policy, clock, clock.sleep)
    assert not result.warmup_settled
    assert 0.05 <= result.warmup_s < 0.06


def test_cooldown_sleeps_before_the_first_run():
    clock = FakeClock()
    policy = TimingPolicy(cooldown_s=2.5, warmup_min_s=0.0)
    measure(scripted_runs(clock, [1e-3] * 10_000), policy, clock, clock.sleep)
    assert clock.slept_s == 2.5


def test_an_op_slower_than_its_timeout_fails_instead_of_blocking_the_agent():
    clock = FakeClock()
    policy = TimingPolicy(op_timeout_s=3.0)
    with pytest.raises(OpFailedError, match="timed out"):
        measure(scripted_runs(clock, [1.0] * 100), policy, clock, clock.sleep)
    assert clock.now_s == pytest.approx(4.0)  # it gave up on the first run past the deadline


def test_median_ci_uses_the_binomial_rank_interval():
    samples = [float(v) for v in range(1, 101)]  # n=100: ranks 50 -+ 9.8 -> values 41 and 60
    median = statistics.median(samples)
    assert median_ci_rel(samples) == pytest.approx(max(median - 41, 60 - median) / median)
    assert math.isinf(median_ci_rel([1.0] * 5))  # too few samples for any interval


def test_sample_stats_report_units_and_flag_unstable_ops():
    samples = [100.0] * 50 + [130.0] * 50
    stats = sample_stats(samples)
    assert stats.n == 100
    assert stats.median_us == pytest.approx(115.0)
    assert stats.iqr_us == pytest.approx(30.0)
    assert stats.p10_us == 100.0 and stats.p90_us == 130.0
    assert stats.mean_us == pytest.approx(115.0)
    assert stats.std_us == pytest.approx(float(np.std(samples, ddof=1)))
    assert stats.cv == pytest.approx(stats.std_us / 115.0)
    assert stats.unstable  # IQR/median = 26% > 10%
    assert not sample_stats([100.0, 101.0, 102.0, 100.5, 101.5]).unstable
    assert sample_stats([100.0, 101.0, 102.0, 100.5]).unstable  # too few samples to judge: the server's rule


def test_policy_rejects_settings_that_cannot_give_a_ci():
    with pytest.raises(ValueError, match="min_runs"):
        TimingPolicy(min_runs=3)
    with pytest.raises(ValueError, match="target_ci_rel"):
        TimingPolicy(target_ci_rel=0.0)


class PreemptedRuns:
    """Scripted runs, some of which were 'preempted': the counter counts those executed so far."""

    def __init__(self, clock: FakeClock, durations_s: list[float], preempted_runs: set[int]) -> None:
        self._clock, self._durations, self._preempted = clock, durations_s, preempted_runs
        self.executed = 0

    def time_one_run(self) -> float:
        duration = self._durations[self.executed]
        self.executed += 1
        self._clock.now_s += duration
        return duration

    def counter(self) -> int:
        return sum(1 for i in range(self.executed) if i in self._preempted)


def test_runs_during_which_the_process_was_preempted_are_discarded_and_counted():
    clock = FakeClock()
    policy = TimingPolicy(warmup_min_runs=1, warmup_window=1, warmup_min_s=0.0, min_runs=10, min_s=0.0)
    # Every 3rd run was preempted and took 3x as long: the neighbour's time slice is in its wall time.
    preempted = {i for i in range(3, 10_000) if i % 3 == 0}
    durations = [3e-3 if i in preempted else 1e-3 for i in range(10_000)]
    runs = PreemptedRuns(clock, durations, preempted)
    result = measure(runs.time_one_run, policy, clock, clock.sleep, runs.counter)
    assert set(result.samples_us) == {1000.0}
    assert result.preempted_runs_discarded >= 3 and result.preempted_runs_kept == 0
    assert result.stop_reason == "ci"


def test_when_clean_runs_are_too_few_at_the_cap_every_run_is_kept_and_flagged():
    clock = FakeClock()
    policy = TimingPolicy(warmup_min_runs=1, warmup_window=1, warmup_min_s=0.0, warmup_max_s=0.0, min_runs=10,
                          min_s=0.0, max_s=0.05)
    runs = PreemptedRuns(clock, [1e-3] * 10_000, set(range(1, 10_000)))  # all but the first run preempted
    result = measure(runs.time_one_run, policy, clock, clock.sleep, runs.counter)
    assert result.stop_reason == "time_cap"
    assert result.preempted_runs_discarded == 0
    assert result.preempted_runs_kept == result.timed_runs >= policy.min_runs
