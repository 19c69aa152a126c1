#!/usr/bin/env bash
# The checks that need a GPU, prepared as one script for a lent GPU machine (about 15 minutes of device time per
# task, so one call does everything). With the `device` tool, from the repository root:
#
#     run(command="bash bench/gpu_check.sh", timeout_s=540)
#
# It needs only what that machine has (torch with CUDA, onnx, onnxruntime, typer, rich, httpx, scikit-learn,
# matplotlib, pytest): our packages run from the checkout (PYTHONPATH), uninstalled; nothing talks to a server.
# Each step has its own time limit and the script goes on after a failed step, so one failure costs one step.
# Written to $OUT (default ./gpu-check-out), each file also printed:
#   env.txt             GPU, driver, torch and onnxruntime versions
#   pytest.txt          the torch backend's tests (on a GPU host the CUDA test must pass instead of refusing)
#   supernet.txt        bench_supernet_throughput.py at the H200 configuration: 224x224, batch 192, 100 classes, bf16
#                       autocast, channels_last (docs/results/README.md, "Supernet speed")
#   torch-cuda.jsonl    the offline agent's results for the FBNet space at 224x224 (10 classes) on CUDA (torch
#                       backend, CUDA events): bring it back, `device-agent upload torch-cuda.jsonl --server URL
#                       --device NAME`
#   search.txt          2-epoch DNAS searches on the GPU with that LUT (digits at 224, weighted and single path)
# GPU_CHECK_DEVICE=cpu runs the same steps on the CPU at toy sizes: the check of this script where no GPU is.
# GPU_CHECK_STEP_LIMITS=off runs each step without its time limit (the test suite: a loaded machine is slow, not
# broken); on the device machine the limits keep one hung step from spending the whole lease.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
STEP_LIMITS=${GPU_CHECK_STEP_LIMITS:-on}
OUT=${OUT:-gpu-check-out}
WORK=$(mktemp -d)  # ONNX files, the LUT, search outputs: $OUT brings back at most 8 files
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ "$DEVICE" = cuda ]; then
  RESOLUTION=224 BATCH=192 CLASSES=100 WIDTH=1.0 HEAD=1984 SCHEDULE=imagenet STEPS=5 MAX_S=0.3 SEARCH_BATCH=64
  PRECISION="--bf16 --channels-last" STRIDES=--imagenet-strides
else
  RESOLUTION=16 BATCH=8 CLASSES=10 WIDTH=0.25 HEAD=64 SCHEDULE=small-input STEPS=2 MAX_S=0.02 SEARCH_BATCH=16
  PRECISION="" STRIDES=--small-input
fi
failed=()

step() {  # step NAME LIMIT_S FILE COMMAND...: run with a time limit, output to FILE and to the log
  local name=$1 limit=$2 file=$3
  shift 3
  local limited=(timeout --kill-after=10 "$limit")
  if [ "$STEP_LIMITS" = off ]; then
    limited=()
    limit=none
  fi
  echo "=== $name (limit ${limit} s) -> $OUT/$file"
  local started=$SECONDS
  # bash -c: the steps are this script's functions (exported below), which `timeout` cannot run directly
  "${limited[@]}" bash -c '"$@"' step "$@" 2>&1 | tee "$OUT/$file"
  local rc=${PIPESTATUS[0]}
  echo "=== $name: exit $rc after $((SECONDS - started)) s"
  [ "$rc" -eq 0 ] || failed+=("$name (exit $rc)")
}

dnas() { "$PY" -c 'import sys; from search_client.commands.cli import main; sys.argv[0] = "dnas"; main()' "$@"; }
device_agent() { "$PY" -m device_agents "$@"; }

environment() {
  nvidia-smi -L 2>/dev/null || echo "nvidia-smi: not here"
  "$PY" - "$DEVICE" <<'PYTHON'
import sys
import onnxruntime
import torch
device = sys.argv[1]
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, onnxruntime {onnxruntime.__version__}")
if device == "cuda":
    if not torch.cuda.is_available():
        sys.exit("no CUDA device visible to torch")
    print(f"{torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
PYTHON
}

profile_space() {
  # 10 classes: the search step below runs on digits with this LUT
  dnas export-ops --out "$WORK/ops" --resolution "$RESOLUTION" --width "$WIDTH" --num-classes 10 \
    --head-channels "$HEAD" $STRIDES || return
  device_agent profile --ops "$WORK/ops/ops.jsonl" --out "$OUT/torch-$DEVICE.jsonl" --backend torch \
    --torch-device "$DEVICE" --max-s "$MAX_S" || return
  # The LUT for the search step, in the shape of a GET /lut/{device} body
  "$PY" - "$OUT/torch-$DEVICE.jsonl" "$WORK/lut-$DEVICE.json" <<'PYTHON'
import json, statistics, sys
from pathlib import Path
from fbnet_core.formats.results import read_results
records = read_results(Path(sys.argv[1]))
failed = [record for record in records if record.is_failure]
median_us = {r.key: statistics.median(r.samples_us) for r in records if r.samples_us is not None}
print(f"{len(records)} ops measured, {len(failed)} failed")
if median_us:
    fastest, slowest = min(median_us, key=median_us.get), max(median_us, key=median_us.get)
    print(f"fastest {fastest}: {median_us[fastest]:.1f} us; slowest {slowest}: {median_us[slowest]:.1f} us")
    Path(sys.argv[2]).write_text(json.dumps({"entries": {k: {"median_us": v} for k, v in median_us.items()}}))
sys.exit(1 if failed or not median_us else 0)
PYTHON
}

search() {  # on the LUT the profile step measured; LAT in us, so that it is > 1 for any architecture
  local mode
  for mode in weighted single_path; do
    dnas search --lut "$WORK/lut-$DEVICE.json" --data digits --resolution "$RESOLUTION" --width "$WIDTH" \
      --head-channels "$HEAD" $STRIDES --epochs 2 --batch-size "$SEARCH_BATCH" --mode "$mode" \
      --torch-device "$DEVICE" --latency-unit-ms 0.001 --max-train-samples $((SEARCH_BATCH * 10)) --samples 2 \
      --out "$WORK/search-$mode" || return
  done
}

export PY DEVICE OUT WORK RESOLUTION BATCH CLASSES WIDTH HEAD SCHEDULE STEPS MAX_S SEARCH_BATCH PRECISION STRIDES
export -f dnas device_agent environment profile_space search
step environment 60 env.txt environment
step pytest 120 pytest.txt "$PY" -m pytest -q -p no:cacheprovider tests/agents/test_torch_backend.py
step supernet 240 supernet.txt "$PY" bench/bench_supernet_throughput.py --device "$DEVICE" --resolution "$RESOLUTION" \
  --batch "$BATCH" --num-classes "$CLASSES" --width "$WIDTH" --head-channels "$HEAD" --schedule "$SCHEDULE" \
  --steps "$STEPS" $PRECISION
step profile 180 "profile-$DEVICE.txt" profile_space
step search 150 search.txt search

if [ "${#failed[@]}" -gt 0 ]; then
  printf 'failed: %s\n' "${failed[@]}"
  exit 1
fi
echo "all steps passed; results in $OUT"
