"""A depthwise convolution that, when asked, skips the kernel taps that can only ever read zero padding.

On a small feature map most taps of a 'same'-padded kernel fall in the padding for every output: a 5x5 kernel
on a 2x2 map only ever multiplies real pixels with its central 3x3 taps, on a 1x1 map only with its centre.
Dropping those taps computes the same output, and the same gradients (the dropped taps' are exactly zero either
way, as they multiply zeros), at a fraction of the cost - most of a CPU search step at 32x32 input with the
ImageNet strides, where 12 of the 22 layers run on 2x2 or 1x1 maps. On the CPU it also runs on channels-last
data, where oneDNN's depthwise kernels are 2-4x faster than on NCHW at 2x2 to 16x16 maps (measured at batch 32),
more than the two layout copies cost.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def receptive_kernel(weight: torch.Tensor, input_hw: tuple[int, int]) -> torch.Tensor:
    """The central taps of an odd, 'same'-padded kernel that can reach a pixel of an `input_hw` map.

    A tap at offset d from the centre reads input row (output row * stride + d); both rows lie in [0, H), so
    only |d| <= H - 1 ever reads a pixel, whatever the stride: at most 2H - 1 taps per axis.
    """
    kernel_h, kernel_w = weight.shape[-2:]
    keep_h, keep_w = min(kernel_h, 2 * input_hw[0] - 1), min(kernel_w, 2 * input_hw[1] - 1)
    top, left = (kernel_h - keep_h) // 2, (kernel_w - keep_w) // 2
    return weight[..., top : top + keep_h, left : left + keep_w]


def depthwise_conv(x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
    """'Same'-padded depthwise convolution of `x` with (channels, 1, K, K) `weight`, only its receptive taps;
    the output keeps `x`'s memory layout."""
    kernel = receptive_kernel(weight, (x.shape[-2], x.shape[-1]))
    padding = (kernel.shape[-2] // 2, kernel.shape[-1] // 2)
    if x.device.type != "cpu":
        return F.conv2d(x, kernel, None, stride, padding, 1, kernel.shape[0])
    layout = torch.contiguous_format if x.is_contiguous() else torch.channels_last
    channels_last = x.contiguous(memory_format=torch.channels_last)
    output = F.conv2d(channels_last, kernel, None, stride, padding, 1, kernel.shape[0])
    return output.contiguous(memory_format=layout)


class DepthwiseConv2d(nn.Conv2d):
    """The candidate blocks' depthwise convolution: an `nn.Conv2d` (same parameters and state) that computes
    with `depthwise_conv` once `crop_to_map` is set.

    Off by default: exported networks keep the kernel the search space names, so the ONNX graph a device
    measures is the block's real one; the supernet turns it on for training, where only the function counts.
    """

    crop_to_map: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.crop_to_map:
            return super().forward(x)
        return depthwise_conv(x, self.weight, self.stride[0])
