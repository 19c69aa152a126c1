"""The whole client flow on a real server: `dnas lut request`, measurements, `dnas lut pull` (cache, offline),
`dnas search --device` on digits, `dnas show`, `dnas train`, `dnas export` - a real search on real data, on CPU.

The measurements come from a stand-in agent written here (it leases the tasks over the protocol and posts
made-up timings): a phone cannot exist in a test, and the real agents are tested in tests/agents.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from typer.testing import CliRunner

from fbnet_core.formats.lut_file import median_us_by_key, read_lut_file
from fbnet_core.keys import network_spec, ops_for_space
from fbnet_core.network_fit import lut_ops
from fbnet_core.space import fbnet_space, space_params
from fbnet_core.space_manifest import space_name
from search_client.commands.cli import app
from search_client.lut.latency import latency_table_for_space
from search_client.space.compile import compile_op
from search_client.space.zoo import FBNetEntry, get_model

SPACE_ARGS = [
    "--resolution",
    "16",
    "--width",
    "0.25",
    "--num-classes",
    "10",
    "--head-channels",
    "64",
    "--small-input",
]
SPACE = fbnet_space(16, 0.25, 10, 64, small_input=True)


def stand_in_latency_us(key: str) -> float:
    """Made-up but structured: wider expansions and larger kernels cost more, so the search has a signal."""
    return 300.0 + 120.0 * key.count("_e6") + 40.0 * key.count("_e3") + 60.0 * key.count(".k5_")


def stand_in_agent_measures_everything(server, device_token: str) -> int:
    with server.client(device_token) as device_client:
        tasks = []
        while batch := device_client.lease(max_tasks=100):
            tasks += batch
        results = [
            {
                "task_id": task.task_id,
                "result_id": str(uuid.uuid4()),
                "key": task.key,
                "onnx_sha256": task.onnx_sha256,
                "samples_us": [stand_in_latency_us(task.key) * factor for factor in (0.98, 1.0, 1.03)],
                "runtime": {"runtime": "stand-in", "runtime_version": "0", "threads": 1},
            }
            for task in tasks
        ]
        device_client.post_results(results)
    return len(tasks)


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def lut_304_count(server) -> int:
    """How many `GET /lut/{device}` requests the server answered with 304, from its /metrics."""
    series = 'profiler_http_requests_total{method="GET",route="/lut/{device}",status="304"} '
    with server.client(server.admin_token) as admin:
        lines = [line for line in admin.metrics().splitlines() if line.startswith(series)]
    return int(float(lines[0].split()[-1])) if lines else 0


def test_request_measure_pull_search_show_train_export(
    live_server_factory, unique_name, tmp_path: Path
) -> None:
    server = live_server_factory("sqlite")
    device = unique_name("stand-in-phone")
    with server.client(server.enroll_token) as enroll:
        device_token = enroll.register_device(device, "android").token
    auth = ["--server", server.url, "--token", server.admin_token]
    space_ops = len(ops_for_space(SPACE))
    needed = len(lut_ops(SPACE))  # the space's ops and the whole networks that fit the LUT's prediction
    assert needed == space_ops + 5

    first = invoke("lut", "request", "--device", device, *SPACE_ARGS, *auth)
    assert f"{needed} entries needed ({space_ops} ops and 5 whole networks that fit how the ops add up)" in first
    assert f"{needed} missing; uploaded {needed} ops, queued {needed} jobs" in first
    again = invoke("lut", "request", "--device", device, *SPACE_ARGS, *auth)
    assert f"uploaded 0 ops, queued 0 jobs ({needed} already queued)" in again

    # The request registered the space, so the server reports this device's coverage of it.
    with server.client(server.admin_token) as admin:
        (coverage,) = admin.get_coverage(device, space_name(SPACE.params))
    assert coverage["total"] == space_ops and coverage["queued"] == space_ops

    assert stand_in_agent_measures_everything(server, device_token) == needed
    done = invoke("lut", "request", "--device", device, *SPACE_ARGS, *auth, "--wait", "--timeout-s", "10")
    assert f"{needed} entries needed" in done and ", 0 missing" in done

    cache = ["--cache-dir", str(tmp_path / "cache")]
    lut_path = tmp_path / "lut.json"
    pulled = invoke("lut", "pull", "--device", device, "-o", str(lut_path), *auth, *cache)
    assert f"{needed} entries" in pulled and "unchanged" not in pulled
    not_modified_before = lut_304_count(server)
    assert "unchanged since the last pull" in invoke(
        "lut", "pull", "--device", device, "-o", str(lut_path), *auth, *cache
    )
    # The second pull (a new client) sent the disk cache's ETag: the server answered 304, not the whole LUT.
    assert lut_304_count(server) == not_modified_before + 1
    entries = json.loads(lut_path.read_text())["entries"]
    some_key = next(iter(entries))
    assert entries[some_key]["median_us"] == pytest.approx(stand_in_latency_us(some_key))

    out = tmp_path / "search"
    searched = invoke(
        "search", "--device", device, *auth, *cache, "--data", "digits", "--resolution", "16", "--width", "0.25",
        "--head-channels", "64", "--epochs", "1", "--batch-size", "32", "--max-train-samples", "320",
        "--samples", "2", "--out", str(out),
    )  # fmt: skip
    assert "argmax architecture:" in searched
    argmax = json.loads((out / "arch_argmax.json").read_text())
    table = latency_table_for_space(SPACE, median_us_by_key(read_lut_file(lut_path)))
    uniform_ms = float(table.block_ms.mean(dim=1).sum()) + table.fixed_ms  # where theta = 0 starts
    assert argmax["predicted_latency_ms"] < uniform_ms  # the latency term pulled theta to faster blocks
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["arch_00.json", "arch_01.json"]

    shown = invoke("show", str(out))
    assert "argmax block" in shown and (out / "theta_probabilities.png").stat().st_size > 10_000

    trained = invoke(
        "train",
        "--arch",
        str(out / "arch_argmax.json"),
        "--data",
        "digits",
        "--epochs",
        "3",  # after 2 the BatchNorm running statistics still lag (val 8-23 % at 70 % train accuracy)
        "--out",
        str(tmp_path / "trained"),
    )
    top1 = float(re.search(r"top-1: ([\d.]+)%", trained).group(1))
    assert top1 > 30.0  # 10 classes: chance is 10%

    onnx_path = tmp_path / "model.onnx"
    invoke(
        "export",
        "--arch",
        str(out / "arch_argmax.json"),
        "-o",
        str(onnx_path),
        "--weights",
        str(tmp_path / "trained" / "model.pt"),
    )
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": np.zeros((1, 3, 16, 16), dtype=np.float32)})
    assert logits.shape == (1, 10)

    server.stop()
    offline = invoke("lut", "pull", "--device", device, "-o", str(tmp_path / "offline.json"), *auth, *cache)
    assert "from the cache (server unreachable" in offline
    assert json.loads((tmp_path / "offline.json").read_text())["entries"] == entries


def test_pull_without_server_or_cache_is_one_clear_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["lut", "pull", "--device", "nowhere", "-o", str(tmp_path / "x.json"), "--server", "http://127.0.0.1:9",
         "--token", "t", "--cache-dir", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "unreachable and no cached LUT of 'nowhere'" in result.output
    assert "Traceback" not in result.output


def write_lut(path: Path, scale_us: float, drop: int = 0) -> list[str]:
    keys = [op.key for op in ops_for_space(fbnet_space(16, 0.25, 10, 64, small_input=True))]
    kept, dropped = keys[drop:], keys[:drop]
    path.write_text(json.dumps({"device": "d", "entries": {key: {"median_us": scale_us} for key in kept}}))
    return dropped


SEARCH_ARGS = [
    "--data",
    "digits",
    "--resolution",
    "16",
    "--width",
    "0.25",
    "--head-channels",
    "64",
    "--epochs",
    "1",
]


def test_search_reports_missing_lut_entries_by_key(tmp_path: Path) -> None:
    dropped = write_lut(tmp_path / "lut.json", 100.0, drop=2)
    result = CliRunner().invoke(
        app, ["search", "--lut", str(tmp_path / "lut.json"), *SEARCH_ARGS, "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "2 LUT entries missing" in result.output and all(key in result.output for key in dropped)


def test_the_papers_schedule_refuses_a_sub_millisecond_lut_naming_the_alternatives(tmp_path: Path) -> None:
    """The paper counts LAT in ms; by default the unit follows the LUT, so only --paper-schedule (or a unit given)
    can make log(LAT) <= 0."""
    write_lut(tmp_path / "lut.json", 1.0)
    result = CliRunner().invoke(
        app,
        [
            "search",
            "--lut",
            str(tmp_path / "lut.json"),
            *SEARCH_ARGS,
            "--paper-schedule",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 2
    assert "needs LAT > 1 unit (1 ms)" in result.output and "--latency-loss additive" in result.output


def test_a_target_below_the_fastest_architecture_is_one_line_naming_the_fastest(tmp_path: Path) -> None:
    write_lut(tmp_path / "lut.json", 100.0)
    result = CliRunner().invoke(
        app,
        [
            "search",
            "--lut",
            str(tmp_path / "lut.json"),
            *SEARCH_ARGS,
            "--target-ms",
            "0.5",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    (line,) = [line for line in result.output.splitlines() if line.strip()]
    lut = median_us_by_key(json.loads((tmp_path / "lut.json").read_text()))
    table = latency_table_for_space(fbnet_space(16, 0.25, 10, 64, small_input=True), lut)
    assert line.startswith("dnas: --target-ms 0.5 is below the fastest architecture of this LUT")
    assert f"{table.min_ms():.3f} ms (" in line and "skip" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "fast"], "--mode: expected one of weighted, single_path"),
        (["--latency-loss", "log"], "--latency-loss: expected one of"),
        (["--data", "mnist"], "--data 'mnist'"),
        (
            ["--sync-bn", "--mode", "single_path", "--latency-loss", "additive"],
            "--sync-bn works with --mode weighted",
        ),
        ([], "give exactly one of --lut PATH and --device NAME"),
        (["--label-smoothing", "1.5"], "--label-smoothing"),
        (["--temperature", "0"], "--temperature must be > 0, got 0.0"),
        (["--temperature-decay", "-0.1"], "--temperature-decay must be >= 0, got -0.1"),
        (["--warmup-fraction", "1"], "--warmup-fraction must be in [0, 1), got 1.0"),
        (["--paper-schedule", "--theta-lr", "0.1"], "--paper-schedule sets --theta-lr to the paper's values"),
        (["--target-ms", "3", "--latency-loss", "additive"], "--target-ms replaces the latency term"),
        (["--alpha", "-1"], "--alpha must be >= 0"),
        (["--theta-passes", "0"], "--theta-passes must be >= 1"),
    ],
)
def test_bad_search_options_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    write_lut(tmp_path / "lut.json", 100.0)
    lut = [] if not args else ["--lut", str(tmp_path / "lut.json")]
    result = CliRunner().invoke(app, ["search", *lut, *SEARCH_ARGS, *args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_export_writes_a_zoo_model_and_refuses_ambiguous_or_unknown_requests(tmp_path: Path) -> None:
    onnx_path = tmp_path / "fbnet_a.onnx"
    assert "input [1, 3, 224, 224]" in invoke("export", "--model", "fbnet_a", "-o", str(onnx_path))
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, 224, 224), np.float32)})
    assert output.shape == (1, 1000)
    for args, message in [
        (["--model", "resnet50"], "unknown model 'resnet50'"),
        ([], "give exactly one of --arch and --model"),
        (["--model", "fbnet_a", "--arch", str(onnx_path)], "give exactly one of --arch and --model"),
        (["--model", "mobilenetv2_100", "--resolution", "16"], "mobilenetv2_100 is not built from the FBNet"),
    ]:
        result = CliRunner().invoke(app, ["export", *args, "-o", str(tmp_path / "x.onnx")])
        assert result.exit_code == 2 and message in result.output, result.output


def test_a_hand_written_list_of_blocks_takes_the_space_the_options_give(tmp_path: Path) -> None:
    """An architecture file without "space" is the ImageNet space unless space options say otherwise."""
    arch = tmp_path / "mine.json"
    arch.write_text(json.dumps({"blocks": ["k3_e1"] * 22}))
    small = ["--resolution", "16", "--width", "0.25", "--head-channels", "64"]
    assert "input [1, 3, 16, 16]" in invoke("export", "--arch", str(arch), *small, "-o", str(tmp_path / "s.onnx"))
    assert "input [1, 3, 224, 224]" in invoke("export", "--arch", str(arch), "-o", str(tmp_path / "l.onnx"))
    # A file that names its space still holds the options to it.
    arch.write_text(json.dumps({"blocks": ["k3_e1"] * 22, "space": {"resolution": 32, "small_input": True}}))
    result = CliRunner().invoke(app, ["export", "--arch", str(arch), *small, "-o", str(tmp_path / "x.onnx")])
    assert result.exit_code == 2 and "was searched for resolution=32" in result.output


def test_export_puts_a_zoo_models_blocks_in_the_space_given(tmp_path: Path) -> None:
    """A speed reference for an agent measuring a 16 px space: FBNet-A's blocks at the ops' own size."""
    small = tmp_path / "fbnet_a-16.onnx"
    space = ["--resolution", "16", "--width", "0.25", "--head-channels", "64"]
    assert "input [1, 3, 16, 16]" in invoke("export", "--model", "fbnet_a", *space, "-o", str(small))
    session = onnxruntime.InferenceSession(str(small), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, 16, 16), np.float32)})
    assert output.shape == (1, 10)
    fbnet_a = get_model("fbnet_a")
    assert isinstance(fbnet_a, FBNetEntry)
    params = space_params(resolution=16, width=0.25, head_channels=64)
    assert compile_op(network_spec(fbnet_a.arch, params), "onnx") == small.read_bytes()  # what validate measures
