"""Rebuilding an op from its spec (see fbnet_core/keys.py): the single place a spec becomes an `nn.Module`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from fbnet_core.arch import Architecture
from fbnet_core.keys import OpSpec, validate_spec
from fbnet_core.space import ClassifierSpec, HeadSpec, StemSpec, build_space, space_params_from_dict
from search_client.space.blocks import make_block
from search_client.space.mobilenetv2 import MobileNetV2
from search_client.space.model import build_model, make_classifier, make_head, make_stem


def _channels_hw(spec: OpSpec) -> tuple[int, tuple[int, int]]:
    _, channels, height, width = spec["input_shape"]
    return channels, (height, width)


def _block(spec: OpSpec) -> nn.Module:
    channels, _ = _channels_hw(spec)
    return make_block(spec["block"], channels, spec["out_channels"], spec["stride"])


def _stem(spec: OpSpec) -> nn.Module:
    channels, hw = _channels_hw(spec)
    return make_stem(StemSpec(channels, spec["out_channels"], spec["stride"], hw, spec["kernel_size"]))


def _head(spec: OpSpec) -> nn.Module:
    channels, hw = _channels_hw(spec)
    return make_head(HeadSpec(channels, spec["out_channels"], hw))


def _pool_fc(spec: OpSpec) -> nn.Module:
    channels, hw = _channels_hw(spec)
    return make_classifier(ClassifierSpec(channels, spec["num_classes"], hw))


def _network(spec: OpSpec) -> nn.Module:
    space = build_space(space_params_from_dict(spec["space"]))
    return build_model(Architecture.from_string(spec["blocks"]), space)


def _mobilenetv2(spec: OpSpec) -> nn.Module:
    return MobileNetV2(spec["width"], spec["num_classes"])


_BUILDERS: dict[str, Callable[[OpSpec], nn.Module]] = {
    "block": _block,
    "stem": _stem,
    "head": _head,
    "pool_fc": _pool_fc,
    "network": _network,
    "mobilenetv2": _mobilenetv2,
}


def build_op(spec: Mapping[str, Any]) -> nn.Module:
    """The freshly initialised module of an op (training mode; export.py seeds and freezes it)."""
    valid = validate_spec(spec)
    return _BUILDERS[valid["kind"]](valid)

