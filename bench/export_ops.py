"""Benchmark: exporting every op of the FBNet space to ONNX, ours against torch's default (dynamo) exporter.

Ours: `search_client.space.export.export_onnx` (TorchScript exporter, opset 17) over all ops of the space. Baseline,
measured in the same run: `torch.onnx.export(..., dynamo=True)`, torch's default, on a sample of the same ops
(the whole space would take minutes), each exported twice to check whether its bytes are stable.

    .venv/bin/python bench/export_ops.py [--resolution 224] [--baseline-ops 4]
"""

from __future__ import annotations

import argparse
import hashlib
import time
import warnings

import torch

from fbnet_core.keys import Op, ops_for_space
from fbnet_core.space import fbnet_space
from search_client.space.export import INPUT_NAME, OPSET_VERSION, OUTPUT_NAME, export_onnx, seeded_eval_op


def _dynamo_bytes(op: Op) -> bytes:
    program = torch.onnx.export(
        seeded_eval_op(op.spec),
        (torch.zeros(op.spec["input_shape"]),),
        dynamo=True,
        opset_version=OPSET_VERSION,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        verbose=False,
    )
    assert program is not None
    return program.model_proto.SerializeToString()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--baseline-ops", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    ops = ops_for_space(fbnet_space(resolution=args.resolution))

    start = time.perf_counter()
    ours = [export_onnx(op.spec) for op in ops]
    ours_s = time.perf_counter() - start
    again = [export_onnx(op.spec) for op in ops]

    sample = ops[:: max(1, len(ops) // args.baseline_ops)][: args.baseline_ops]
    start = time.perf_counter()
    baseline = [_dynamo_bytes(op) for op in sample]
    baseline_s = time.perf_counter() - start
    baseline_again = [_dynamo_bytes(op) for op in sample]

    ours_per_op = ours_s / len(ops)
    baseline_per_op = baseline_s / len(sample)
    print(f"ops in the space at {args.resolution}: {len(ops)}")
    print(
        f"ours (TorchScript exporter): {ours_s:.2f} s for all, {ours_per_op * 1e3:.1f} ms per op, "
        f"bytes stable on re-export: {ours == again}"
    )
    print(
        f"baseline (dynamo exporter): {baseline_s:.2f} s for {len(sample)} ops, {baseline_per_op * 1e3:.1f} ms "
        f"per op, bytes stable on re-export: {baseline == baseline_again}"
    )
    print(
        f"speed-up per op: {baseline_per_op / ours_per_op:.1f}x; "
        f"whole space with the baseline: ~{baseline_per_op * len(ops):.0f} s"
    )
    print(
        f"total ONNX bytes (ours): {sum(map(len, ours)) / 1e6:.1f} MB; "
        f"sha256 of the manifest of hashes: "
        f"{hashlib.sha256(''.join(hashlib.sha256(b).hexdigest() for b in ours).encode()).hexdigest()[:16]}"
    )


if __name__ == "__main__":
    main()
