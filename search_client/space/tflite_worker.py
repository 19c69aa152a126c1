"""Run inside the LiteRT converter's own environment (.venv-litert, scripts/setup-litert-converter.sh): convert
saved torch.export programs to `.tflite` files. It imports only torch and litert_torch, never this project, so
the converter's dependencies never meet the project's.

stdin: {"torch_version": <the saving side's torch>, "jobs": [{"program": <.pt2 path>, "input_shape": [1, C, H, W],
"output": <.tflite path>}, ...]};
stdout: one line per file written. Any failure exits non-zero with a one-line reason on stderr.
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    try:
        import litert_torch
        import torch
    except ImportError as exc:
        print(f"the LiteRT converter is missing here ({exc}): run scripts/setup-litert-converter.sh", file=sys.stderr)
        return 3
    request = json.load(sys.stdin)
    if request["torch_version"] != torch.__version__:
        # A saved program loads only into the torch release that wrote it.
        print(
            f"the converter's torch is {torch.__version__}, the programs were saved by {request['torch_version']}: "
            "run scripts/setup-litert-converter.sh with TORCH_VERSION set to the latter",
            file=sys.stderr,
        )
        return 2
    for job in request["jobs"]:
        try:
            module = torch.export.load(job["program"]).module()
            sample = (torch.zeros(tuple(job["input_shape"])),)
            litert_torch.convert(module, sample).export(job["output"])
        except Exception as exc:  # the converter raises many unrelated types; one line names the file
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            print(f"{job['program']}: {type(exc).__name__}: {first_line[:500]}", file=sys.stderr)
            return 1
        print(job["output"], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
