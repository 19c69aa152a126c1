"""Canonical LUT keys: op specs (JSON objects an op is rebuilt from) and the URL-safe keys derived from them.

Spec kinds (see docs/contracts.md); all carry "kind", "batch": 1, "dtype": "float32", "input_shape": [1,C,H,W]:
    block    {"block": name, "out_channels", "stride"}             key blk.k3_e6.c16.o24.s2.h112w112
    stem     {"out_channels", "kernel_size", "stride"}             key stem.k3.c3.o16.s2.h224w224
    head     {"out_channels"}                                      key head.c352.o1984.h7w7
    pool_fc  {"num_classes"}                                       key poolfc.c1984.o1000.h7w7
    network  {"blocks": arch string, "space": SpaceParams fields}  key net.r224.<16 hex of sha256(spec)>
    mobilenetv2 {"width", "num_classes"}                           key mnv2.w1.0.o1000.h224w224
A key depends only on the op's structure and shape, never on where it sits in a network, so two layers (or two
search spaces) that need the same op share one LUT entry. Identity skips are not ops: they cost nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from fbnet_core.arch import Architecture
from fbnet_core.blocks import CANDIDATES, check_block_geometry, is_identity
from fbnet_core.errors import FbnetLutError, InvalidOpSpecError
from fbnet_core.space import (
    IMAGE_CHANNELS,
    ClassifierSpec,
    HeadSpec,
    LayerSpec,
    SearchSpace,
    SpaceParams,
    StemSpec,
    build_space,
    space_params_from_dict,
)

OpSpec = dict[str, Any]
# Every key: URL-safe, at most 200 characters (`fullmatch` it; the server's request models use it too).
KEY_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,200}")
# A block op's key, as `op_key` builds it: blk.<block>.c<in>.o<out>.s<stride>.h<H>w<W>.
BLOCK_KEY_PATTERN = re.compile(
    r"blk\.(?P<block>[A-Za-z0-9_]+)\.c(?P<in_channels>\d+)\.o(?P<out_channels>\d+)\.s(?P<stride>\d+)"
    r"\.h(?P<height>\d+)w(?P<width>\d+)"
)
# The fixed ops' keys, as `op_key` builds them; `space_match.py` reads a LUT's spaces back from them.
STEM_KEY_PATTERN = re.compile(
    r"stem\.k(?P<kernel_size>\d+)\.c(?P<in_channels>\d+)\.o(?P<out_channels>\d+)\.s(?P<stride>\d+)"
    r"\.h(?P<height>\d+)w(?P<width>\d+)"
)
HEAD_KEY_PATTERN = re.compile(r"head\.c(?P<in_channels>\d+)\.o(?P<out_channels>\d+)\.h(?P<height>\d+)w(?P<width>\d+)")
POOL_FC_KEY_PATTERN = re.compile(
    r"poolfc\.c(?P<in_channels>\d+)\.o(?P<out_channels>\d+)\.h(?P<height>\d+)w(?P<width>\d+)"
)
NETWORK_HASH_CHARS = 16

# Fields each kind needs besides the common ones, with their JSON types.
_KIND_FIELDS: dict[str, dict[str, type]] = {
    "block": {"block": str, "out_channels": int, "stride": int},
    "stem": {"out_channels": int, "kernel_size": int, "stride": int},
    "head": {"out_channels": int},
    "pool_fc": {"num_classes": int},
    "network": {"blocks": str, "space": dict},
    "mobilenetv2": {"width": float, "num_classes": int},
}
_COMMON_FIELDS = ("kind", "batch", "dtype", "input_shape")


@dataclass(frozen=True)
class Op:
    """One LUT entry: its key and the spec that rebuilds it."""

    key: str
    spec: OpSpec


def _base(kind: str, channels: int, hw: tuple[int, int]) -> OpSpec:
    return {"kind": kind, "batch": 1, "dtype": "float32", "input_shape": [1, channels, hw[0], hw[1]]}


def block_spec(name: str, layer: LayerSpec) -> OpSpec:
    return {
        **_base("block", layer.in_channels, layer.input_hw),
        "block": name,
        "out_channels": layer.out_channels,
        "stride": layer.stride,
    }


def stem_spec(stem: StemSpec) -> OpSpec:
    return {
        **_base("stem", stem.in_channels, stem.input_hw),
        "out_channels": stem.out_channels,
        "kernel_size": stem.kernel_size,
        "stride": stem.stride,
    }


def head_spec(head: HeadSpec) -> OpSpec:
    return {**_base("head", head.in_channels, head.input_hw), "out_channels": head.out_channels}


def pool_fc_spec(classifier: ClassifierSpec) -> OpSpec:
    return {
        **_base("pool_fc", classifier.in_channels, classifier.input_hw),
        "num_classes": classifier.num_classes,
    }


def network_spec(arch: Architecture, params: SpaceParams) -> OpSpec:
    space = build_space(params)
    spec = _base("network", space.input_shape[1], (params.resolution, params.resolution))
    return {**spec, "blocks": arch.to_string(), "space": asdict(params)}


def mobilenetv2_spec(width: float, num_classes: int, resolution: int) -> OpSpec:
    return {
        **_base("mobilenetv2", IMAGE_CHANNELS, (resolution, resolution)),
        "width": float(width),
        "num_classes": num_classes,
    }


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_spec(spec: Mapping[str, Any]) -> OpSpec:
    """Check a spec's fields and consistency; returns it as a plain dict. Raises InvalidOpSpecError."""
    if not isinstance(spec, Mapping):
        raise InvalidOpSpecError(f"an op spec must be a JSON object, got {type(spec).__name__}")
    missing = [field for field in _COMMON_FIELDS if field not in spec]
    if missing:
        raise InvalidOpSpecError(f"op spec is missing field(s) {missing}")
    kind = spec["kind"]
    if kind not in _KIND_FIELDS:
        raise InvalidOpSpecError(f"op spec field 'kind' must be one of {sorted(_KIND_FIELDS)}, got {kind!r}")
    if spec["batch"] != 1 or not _is_int(spec["batch"]):
        raise InvalidOpSpecError(f"op spec field 'batch' must be 1, got {spec['batch']!r}")
    if spec["dtype"] != "float32":
        raise InvalidOpSpecError(f"op spec field 'dtype' must be 'float32', got {spec['dtype']!r}")
    shape = spec["input_shape"]
    if not (isinstance(shape, list | tuple) and len(shape) == 4 and all(_is_int(d) and d > 0 for d in shape)):
        raise InvalidOpSpecError(f"op spec field 'input_shape' must be 4 positive integers, got {shape!r}")
    if shape[0] != 1:
        raise InvalidOpSpecError(f"op spec field 'input_shape' must have batch 1, got {shape!r}")
    fields = _KIND_FIELDS[kind]
    extra = sorted(set(spec) - set(fields) - set(_COMMON_FIELDS))
    if extra:
        raise InvalidOpSpecError(f"op spec of kind {kind!r} has unknown field(s) {extra}")
    for field, field_type in fields.items():
        if field not in spec:
            raise InvalidOpSpecError(f"op spec of kind {kind!r} is missing field {field!r}")
        value = spec[field]
        if field_type is int:
            ok = _is_int(value) and value > 0
        elif field_type is float:
            ok = (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
                and value > 0
            )
        else:
            ok = isinstance(value, field_type)
        if not ok:
            raise InvalidOpSpecError(f"op spec field {field!r} is invalid: {value!r}")
    return _validate_kind({**dict(spec), "input_shape": list(shape)})


def _validate_kind(spec: OpSpec) -> OpSpec:
    """Per-kind consistency checks; returns the spec in canonical form (network space fields normalised)."""
    channels = spec["input_shape"][1]
    kind = spec["kind"]
    if kind == "block":
        check_block_geometry(spec["block"], channels, spec["out_channels"], spec["stride"])
        if is_identity(spec["block"], channels, spec["out_channels"], spec["stride"]):
            raise InvalidOpSpecError("an identity skip is not an op: it needs no measurement")
    elif kind == "stem" and spec["kernel_size"] % 2 == 0:
        raise InvalidOpSpecError(f"op spec field 'kernel_size' must be odd, got {spec['kernel_size']}")
    elif kind == "network":
        try:
            params = space_params_from_dict(spec["space"])
            Architecture.from_string(spec["blocks"])
        except FbnetLutError as exc:
            raise InvalidOpSpecError(f"network op spec: {exc}") from exc
        expected = list(build_space(params).input_shape)
        if spec["input_shape"] != expected:
            raise InvalidOpSpecError(
                f"network op spec: input_shape must be {expected}, got {spec['input_shape']}"
            )
        # `"width": 1` and `"width": 1.0` are one network: hash the decoded parameters, not the raw JSON.
        return {**spec, "space": asdict(params)}
    elif kind == "mobilenetv2":
        if spec["input_shape"][1] != IMAGE_CHANNELS:
            raise InvalidOpSpecError(f"mobilenetv2 op spec: input_shape must have {IMAGE_CHANNELS} channels")
        return {**spec, "width": float(spec["width"])}
    return spec


def op_input_shape(spec: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """The (validated) input shape of an op: [1, C, H, W]."""
    batch, channels, height, width = validate_spec(spec)["input_shape"]
    return (batch, channels, height, width)


def canonical_json(spec: Mapping[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


def op_key(spec: Mapping[str, Any]) -> str:
    """The LUT key of an op: deterministic, readable, URL-safe, derived only from the (validated) spec."""
    spec = validate_spec(spec)
    _, channels, height, width = spec["input_shape"]
    shape = f"h{height}w{width}"
    kind = spec["kind"]
    if kind == "block":
        key = f"blk.{spec['block']}.c{channels}.o{spec['out_channels']}.s{spec['stride']}.{shape}"
    elif kind == "stem":
        key = f"stem.k{spec['kernel_size']}.c{channels}.o{spec['out_channels']}.s{spec['stride']}.{shape}"
    elif kind == "head":
        key = f"head.c{channels}.o{spec['out_channels']}.{shape}"
    elif kind == "pool_fc":
        key = f"poolfc.c{channels}.o{spec['num_classes']}.{shape}"
    elif kind == "mobilenetv2":
        key = f"mnv2.w{spec['width']}.o{spec['num_classes']}.{shape}"
    else:
        # An architecture string is too long for a key; the hash of the canonical spec is stable across runs.
        digest = hashlib.sha256(canonical_json(spec).encode()).hexdigest()[:NETWORK_HASH_CHARS]
        key = f"net.r{height}.{digest}"
    if not KEY_PATTERN.fullmatch(key):
        raise InvalidOpSpecError(f"op key {key!r} is not URL-safe")
    return key


def make_op(spec: OpSpec) -> Op:
    return Op(op_key(spec), spec)


def fixed_ops(space: SearchSpace) -> tuple[Op, Op, Op]:
    """The ops every network of the space runs: stem, head, pool + classifier."""
    return (
        make_op(stem_spec(space.stem)),
        make_op(head_spec(space.head)),
        make_op(pool_fc_spec(space.classifier)),
    )


def candidate_ops(space: SearchSpace) -> tuple[tuple[Op | None, ...], ...]:
    """Per layer, one entry per candidate in `CANDIDATES` order; None where the candidate is an identity."""
    return tuple(
        tuple(
            None
            if is_identity(name, layer.in_channels, layer.out_channels, layer.stride)
            else make_op(block_spec(name, layer))
            for name in CANDIDATES
        )
        for layer in space.layers
    )


def ops_for_space(space: SearchSpace) -> list[Op]:
    """Every unique op the space can need, stem first, then layer by layer, then head and pool + fc."""
    stem, head, pool_fc = fixed_ops(space)
    unique: dict[str, Op] = {stem.key: stem}
    for layer_ops in candidate_ops(space):
        unique.update((op.key, op) for op in layer_ops if op is not None)
    unique[head.key] = head
    unique[pool_fc.key] = pool_fc
    return list(unique.values())


def ops_for_architecture(arch: Architecture, space: SearchSpace) -> list[Op]:
    """The ops one network runs, in order, repeats kept, identity skips left out."""
    stem, head, pool_fc = fixed_ops(space)
    blocks = [
        make_op(block_spec(name, layer))
        for name, layer in zip(arch.blocks, space.layers, strict=True)
        if not is_identity(name, layer.in_channels, layer.out_channels, layer.stride)
    ]
    return [stem, *blocks, head, pool_fc]


@dataclass(frozen=True)
class BlockKey:
    """What a block op's key says: the candidate and the layer shape it runs at."""

    block: str
    in_channels: int
    out_channels: int
    stride: int
    input_hw: tuple[int, int]


def parse_block_key(key: str) -> BlockKey | None:
    """The parts of a block op's key; None for any other key (stem, head, a network...)."""
    match = BLOCK_KEY_PATTERN.fullmatch(key)
    if match is None:
        return None
    number = {name: int(value) for name, value in match.groupdict().items() if name != "block"}
    return BlockKey(
        match["block"],
        number["in_channels"],
        number["out_channels"],
        number["stride"],
        (number["height"], number["width"]),
    )
