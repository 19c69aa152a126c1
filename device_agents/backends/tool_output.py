"""Strict parsers for the text that on-device benchmark binaries print.

A parse failure raises `OpFailedError` carrying the tool's output: a latency is never read as 0 because a
line moved (a failure seen with benchmark tools whose output format changed between releases). Each parser returns
the mean latency of one invocation in microseconds and the tool's own figures for the record.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from device_agents.errors import OpFailedError

_NUMBER = r"([0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)"
_OUTPUT_IN_REASON = 2_000  # characters of tool output kept in a failure reason


@dataclass(frozen=True)
class ToolReading:
    mean_us: float
    runs: int
    details: dict[str, float] = field(default_factory=dict)


def _fail(tool: str, problem: str, output: str) -> OpFailedError:
    tail = output[-_OUTPUT_IN_REASON:]
    return OpFailedError(f"{tool}: {problem}; output was:\n{tail}")


def _positive(tool: str, name: str, text: str, output: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise _fail(tool, f"{name} is {text}, not a positive latency", output)
    return value


def _one(tool: str, pattern: str, output: str, what: str) -> re.Match[str]:
    matches = list(re.finditer(pattern, output, flags=re.MULTILINE))
    if len(matches) != 1:
        found = "no" if not matches else f"{len(matches)}"
        raise _fail(tool, f"expected one '{what}' line, found {found}", output)
    return matches[0]


def parse_ort_perf_test(output: str) -> ToolReading:
    """onnxruntime_perf_test: 'Average inference time cost: X ms' (older: 'Average time cost: X ms')."""
    tool = "onnxruntime_perf_test"
    mean = _one(tool, rf"^Average (?:inference )?time cost: ?{_NUMBER} ms\s*$", output, "Average ... time cost")
    runs = _one(tool, r"^Total (?:inference requests|iterations): ?([0-9]+)\s*$", output, "Total ... requests")
    count = int(runs.group(1))
    if count < 1:
        raise _fail(tool, "no timed runs", output)
    details: dict[str, float] = {}
    for name, value in re.findall(rf"^(Min|Max|P50|P90|P95|P99|P999) Latency(?: is|:) ?{_NUMBER} s(?:ec)?\s*$",
                                  output, flags=re.MULTILINE):
        details[f"{name.lower()}_us"] = float(value) * 1e6
    return ToolReading(_positive(tool, "the average", mean.group(1), output) * 1e3, count, details)


def parse_tflite_benchmark_model(output: str) -> ToolReading:
    """LiteRT/TFLite benchmark_model: 'Inference (avg): X' on the 'Inference timings in us:' line."""
    tool = "benchmark_model"
    timings = _one(tool, r"^Inference timings in us: .*$", output, "Inference timings in us")
    mean = re.search(rf"Inference \(avg\): {_NUMBER}", timings.group(0))
    if mean is None:
        raise _fail(tool, "no 'Inference (avg)' figure on the timings line", output)
    counts = re.findall(
        rf"^count=([0-9]+) first={_NUMBER} curr={_NUMBER} min={_NUMBER} max={_NUMBER} avg={_NUMBER} std={_NUMBER}\s*$",
        output,
        flags=re.MULTILINE,
    )
    if len(counts) < 2:  # the warm-up block, then the timed block
        raise _fail(tool, f"expected warm-up and timed 'count=' lines, found {len(counts)}", output)
    count, first, _curr, low, high, avg, std = counts[-1]
    if int(count) < 1:
        raise _fail(tool, "no timed runs", output)
    details = {"first_us": float(first), "min_us": float(low), "max_us": float(high), "std_us": float(std),
               "avg_us": float(avg)}
    return ToolReading(_positive(tool, "Inference (avg)", mean.group(1), output), int(count), details)


# ExecuTorch's log prefix (runtime/platform/default/posix.cpp): "<level> hh:mm:ss.uuuuuu executorch:<file>:<line>] ".
_ET_LOG = r"^I [0-9]{2,}:[0-9]{2}:[0-9]{2}\.[0-9]{6} executorch:executor_runner\.cpp:[0-9]+\] "
_ET_BUILD_HINT = ("build executor_runner with -DEXECUTORCH_ENABLE_LOGGING=ON -DEXECUTORCH_LOG_LEVEL=Info "
                  "-DEXECUTORCH_PAL_DEFAULT=posix so that it prints its timings (docs/agents.md)")  # fmt: skip


def parse_executor_runner(output: str) -> ToolReading:
    """ExecuTorch's executor_runner with --num_executions=N: 'Iteration i of N: X ms' per run, then 'Model executed
    successfully N time(s) in T ms.'. The tool runs no warm-up, so its first run (a cold start: caches, page faults,
    XNNPACK's weight packing) is left out of the mean when there is more than one; it is kept as `first_us`."""
    tool = "executor_runner"
    total = _one(tool, rf"{_ET_LOG}Model executed successfully ([0-9]+) time\(s\) in {_NUMBER} ms\.\s*$", output,
                 f"Model executed successfully (or {_ET_BUILD_HINT})")  # fmt: skip
    count = int(total.group(1))
    if count < 1:
        raise _fail(tool, "no timed runs", output)
    total_ms = float(total.group(2))
    iterations = re.findall(rf"{_ET_LOG}Iteration ([0-9]+) of ([0-9]+): {_NUMBER} ms\s*$", output, flags=re.MULTILINE)
    if not iterations:  # releases before the per-run lines: the mean of every run
        return ToolReading(_positive(tool, "the total", str(total_ms), output) * 1e3 / count, count, {})
    numbers = [int(index) for index, _, _ in iterations]
    if numbers != list(range(1, count + 1)) or any(int(of) != count for _, of, _ in iterations):
        raise _fail(tool, f"expected 'Iteration 1..{count} of {count}' lines, found runs {numbers}", output)
    runs_us = [_positive(tool, f"iteration {i}", ms, output) * 1e3 for i, (_, _, ms) in enumerate(iterations, 1)]
    if not math.isclose(sum(runs_us) / 1e3, total_ms, rel_tol=1e-3, abs_tol=1e-3 * count):
        raise _fail(tool, f"the runs add up to {sum(runs_us) / 1e3:g} ms, the total says {total_ms:g} ms", output)
    timed = runs_us[1:] if count > 1 else runs_us
    details = {"first_us": runs_us[0], "min_us": min(timed), "max_us": max(timed), "total_ms": total_ms}
    return ToolReading(sum(timed) / len(timed), len(timed), details)
