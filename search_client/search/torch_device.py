"""`--torch-device` as a torch device this process can use, or a typed error that says why not."""

from __future__ import annotations

import torch

from search_client.errors import InvalidSearchConfigError


def usable_torch_device(name: str) -> torch.device:
    """torch.device(name), checked now: torch would otherwise fail at the first tensor moved there, deep in the
    search, with an AssertionError."""
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise InvalidSearchConfigError(f"--torch-device {name!r}: {exc}") from exc
    if device.type == "cuda":
        if torch.version.cuda is None:
            raise InvalidSearchConfigError(
                f"--torch-device {name}: CUDA is not available in this torch build"
            )
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InvalidSearchConfigError(
                f"--torch-device {name}: this torch build has CUDA, but no GPU is visible"
            )
        if device.index is not None and device.index >= count:
            raise InvalidSearchConfigError(f"--torch-device {name}: only {count} GPU(s) visible")
    return device


def activation_layout(device: torch.device) -> torch.memory_format:
    """The memory layout networks train in on `device`: channels-last on the CPU, where oneDNN's convolutions, the
    depthwise ones above all, run faster on it (bench/bench_supernet.py times both layouts); the default
    elsewhere."""
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format
