"""BatchNorm over channels that several BatchNorm2d modules normalise one after another, in one call.

BatchNorm is per channel, so normalising the concatenation of blocks' outputs with the concatenation of their
parameters and running statistics is the same function as each module on its own slice; the updated running
statistics are written back to the modules, which stay the owners of all state. A SyncBatchNorm (`--sync-bn`)
that synchronises this call, with statistics spanning processes, runs module by module on its slice instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def _normalises_locally(norm: nn.Module) -> bool:
    """A BatchNorm2d, or a SyncBatchNorm that will not synchronise (SyncBatchNorm.forward's own condition)."""
    if type(norm) is nn.BatchNorm2d:
        return True
    syncing = norm.training and dist.is_available() and dist.is_initialized()
    return isinstance(norm, nn.SyncBatchNorm) and not syncing


def _average_factor(norm: _BatchNorm) -> float:
    """The running-average factor of this call, as `nn.BatchNorm2d.forward` computes it (None: cumulative)."""
    if norm.momentum is not None:
        return norm.momentum
    return 1.0 / float(norm.num_batches_tracked)


def _check_alike(norms: Sequence[_BatchNorm]) -> _BatchNorm:
    first = norms[0]
    for norm in norms[1:]:
        if (norm.training, norm.eps, norm.momentum, norm.track_running_stats, norm.affine) != (
            first.training,
            first.eps,
            first.momentum,
            first.track_running_stats,
            first.affine,
        ):
            raise ValueError("concat_batch_norm needs BatchNorm2d modules with the same settings and mode")
    return first


def concat_batch_norm(x: torch.Tensor, norms: Sequence[nn.Module]) -> torch.Tensor:
    """`torch.cat([norm(part) for norm, part in zip(norms, x.split(sizes, 1))], 1)`, in one batch_norm."""
    if len(norms) == 1:
        return norms[0](x)
    batch_norms = [norm for norm in norms if isinstance(norm, _BatchNorm) and _normalises_locally(norm)]
    if len(batch_norms) < len(norms):
        sizes = [int(norm.num_features) for norm in norms]
        return torch.cat([norm(part) for norm, part in zip(norms, x.split(sizes, 1), strict=True)], 1)
    first = _check_alike(batch_norms)
    tracking = first.track_running_stats
    update = first.training and tracking
    if update:
        for norm in batch_norms:
            norm.num_batches_tracked.add_(1)
    running_mean = torch.cat([norm.running_mean for norm in batch_norms]) if tracking else None
    running_var = torch.cat([norm.running_var for norm in batch_norms]) if tracking else None
    output = F.batch_norm(
        x,
        running_mean,
        running_var,
        torch.cat([norm.weight for norm in batch_norms]) if first.affine else None,
        torch.cat([norm.bias for norm in batch_norms]) if first.affine else None,
        first.training or not tracking,
        _average_factor(first) if update else 0.0,
        first.eps,
    )
    if update:
        assert running_mean is not None and running_var is not None
        sizes = [norm.num_features for norm in batch_norms]
        with torch.no_grad():
            for norm, mean, var in zip(
                batch_norms, running_mean.split(sizes), running_var.split(sizes), strict=True
            ):
                norm.running_mean.copy_(mean)
                norm.running_var.copy_(var)
    return output
