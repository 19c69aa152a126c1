"""BatchNorm computed outside `nn.BatchNorm2d.forward` with the module's own semantics and state.

The supernet's weighted layer normalises with a module's parameters in its own arithmetic (a permuted channel
order, or the per-sample weights folded into the scale); these helpers give it the statistics that module's
forward would have used and update the module's running statistics exactly as that forward would.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def normalises_locally(norm: nn.Module) -> bool:
    """An affine BatchNorm2d, or an affine SyncBatchNorm that will not synchronise (SyncBatchNorm.forward's own
    condition): one whose forward is plain `F.batch_norm` over this process's batch."""
    if not isinstance(norm, _BatchNorm) or not norm.affine:
        return False
    if type(norm) is nn.BatchNorm2d:
        return True
    syncing = norm.training and dist.is_available() and dist.is_initialized()
    return isinstance(norm, nn.SyncBatchNorm) and not syncing


def uses_batch_statistics(norm: _BatchNorm) -> bool:
    return norm.training or not norm.track_running_stats


def _average_factor(norm: _BatchNorm) -> float:
    """The running-average factor of this call, as `nn.BatchNorm2d.forward` computes it (None: cumulative)."""
    norm.num_batches_tracked.add_(1)
    if norm.momentum is not None:
        return norm.momentum
    return 1.0 / float(norm.num_batches_tracked)


@torch.no_grad()
def normalising_statistics(x: torch.Tensor, norm: _BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and 1 / sqrt(var + eps) that `norm(x)` normalises with, updating `norm`'s running
    statistics as its forward does (training mode, tracked statistics)."""
    if uses_batch_statistics(norm):
        update = norm.training and norm.track_running_stats
        running_mean = norm.running_mean if update else None
        running_var = norm.running_var if update else None
        factor = _average_factor(norm) if update else 0.0
        mean, var = torch.batch_norm_update_stats(x, running_mean, running_var, factor)
    else:
        mean, var = norm.running_mean, norm.running_var
    return mean, (var + norm.eps).rsqrt()


def permuted_batch_norm(x: torch.Tensor, norm: _BatchNorm, order: torch.Tensor) -> torch.Tensor:
    """`norm(y).index_select(1, order)` for `x = y.index_select(1, order)`: BatchNorm is per channel, so it runs
    on the permuted channels with permuted parameters; the running statistics are written back in `norm`'s
    order."""
    if not normalises_locally(norm):
        raise ValueError("permuted_batch_norm needs a BatchNorm2d normalising this process's batch")
    update = norm.training and norm.track_running_stats
    running_mean = norm.running_mean.index_select(0, order) if norm.track_running_stats else None
    running_var = norm.running_var.index_select(0, order) if norm.track_running_stats else None
    output = F.batch_norm(
        x,
        running_mean,
        running_var,
        norm.weight.index_select(0, order),
        norm.bias.index_select(0, order),
        uses_batch_statistics(norm),
        _average_factor(norm) if update else 0.0,
        norm.eps,
    )
    if update:
        assert running_mean is not None and running_var is not None
        with torch.no_grad():
            norm.running_mean.index_copy_(0, order, running_mean)
            norm.running_var.index_copy_(0, order, running_var)
    return output
