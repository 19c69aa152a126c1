"""Data-parallel search over torch.distributed (torchrun; gloo on CPU, nccl on GPU).

The latency-aware loss is not a mean of per-sample losses (CE_mean * f(LAT_mean)), so averaging per-rank losses,
as plain DDP does, would give a different gradient from one process over the combined batch - the multi-GPU
latency bug of public reimplementations. Each rank therefore sums its own samples' cross-entropy and expected
latency (from its own Gumbel weights), the sums are all-reduced *with autograd*, and every rank evaluates the
loss of the whole global batch. The all-reduce's backward sums the R identical upstream gradients, DDP divides
by R, and each parameter ends with exactly the single-process gradient.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_from_environment(device: torch.device) -> DistContext:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK); a single process otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistContext()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose backward sums the gradients over ranks too. Written here because torch's own
    (`torch.distributed.nn.functional.all_reduce`) is deprecated and its suggested replacement is private."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, values: torch.Tensor) -> torch.Tensor:
        summed = values.clone()
        dist.all_reduce(summed, op=dist.ReduceOp.SUM)
        return summed

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        summed = grad.clone()
        dist.all_reduce(summed, op=dist.ReduceOp.SUM)
        return summed


def global_sum(values: torch.Tensor, context: DistContext) -> torch.Tensor:
    """Sum over all ranks, differentiable (its backward all-reduces the gradient too)."""
    if not context.enabled:
        return values
    return _AllReduceSum.apply(values)


def shard_batch(indices: torch.Tensor, context: DistContext) -> torch.Tensor:
    """This rank's share of one global batch: every R-th sample, so the ranks together see the whole batch."""
    return indices[context.rank :: context.world_size]
