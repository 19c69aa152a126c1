"""Write the compiled test fixtures (tests/search_space/data/): .tflite files with the LiteRT converter
(.venv-litert), and one .pte file (the server's tests store real files of each format).

CI has no converter (it is about 2 GB, scripts/setup-litert-converter.sh), so the tests that run a .tflite on
LiteRT read these files, converted once from the ops below; tests/search_space/test_compile.py checks, where the
converter is installed, that converting again gives the same bytes.

    .venv/bin/python scripts/make-compiled-fixtures.py
"""

from __future__ import annotations

from pathlib import Path

from fbnet_core.keys import ops_for_space
from fbnet_core.space import fbnet_space
from search_client.space.compile import compile_ops

DATA = Path(__file__).resolve().parents[1] / "tests" / "search_space" / "data"
# The tests' small space (tests/search_space/test_compile.py): an inverted residual with its skip, and a grouped
# block with its channel shuffle.
FIXTURE_SPACE = fbnet_space(resolution=32, small_input=True, num_classes=10)
FIXTURE_KEYS = ("blk.k3_e6.c16.o16.s1.h32w32", "blk.k5_e1_g2.c16.o16.s1.h32w32")


def main() -> None:
    ops = {op.key: op for op in ops_for_space(FIXTURE_SPACE)}
    chosen = [ops[key] for key in FIXTURE_KEYS]
    for op, data in zip(chosen, compile_ops([op.spec for op in chosen], "tflite"), strict=True):
        path = DATA / f"{op.key}.tflite"
        path.write_bytes(data)
        print(f"wrote {path} ({len(data):,} bytes)")
    path = DATA / f"{chosen[0].key}.pte"
    path.write_bytes(compile_ops([chosen[0].spec], "pte")[0])
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
