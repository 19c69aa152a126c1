"""ExecuTorch programs (`.pte`) of ops and whole networks: torch.export, then the XNNPACK delegate.

`to_edge_transform_and_lower` with the XNNPACK partitioner hands every supported subgraph (for the FBNet
blocks: the whole block) to XNNPACK, the CPU kernels ExecuTorch uses on Android and iOS; what stays outside
runs on ExecuTorch's portable kernels. The program's bytes are a function of the module and its weights:
compiling the same op twice, in any process, gives the same file (tests/search/test_compile.py checks it).
"""

from __future__ import annotations

import torch
from torch import nn

from search_client.errors import CompilerUnavailableError, ExportError

INSTALL_HINT = "pip install 'fbnet-lut[executorch]' (executorch>=1.5, beside torch)"


def compile_pte(module: nn.Module, input_shape: tuple[int, int, int, int]) -> bytes:
    """The `.pte` bytes of an eval-mode module with one static float32 input."""
    try:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower
    except ImportError as exc:
        raise CompilerUnavailableError(f"compiling .pte needs ExecuTorch: {INSTALL_HINT} ({exc})") from exc
    try:
        with torch.no_grad():
            exported = torch.export.export(module.eval(), (torch.zeros(input_shape),), strict=True)
        lowered = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
        return bytes(lowered.to_executorch().buffer)
    except Exception as exc:  # torch.export and the lowering raise many unrelated types; one boundary
        raise ExportError(f"ExecuTorch compilation failed for input shape {input_shape}: {exc}") from exc

