from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fbnet_core.arch import Architecture
from fbnet_core.blocks import CANDIDATES
from fbnet_core.errors import InvalidOpSpecError, UnknownBlockError
from fbnet_core.keys import (
    KEY_PATTERN,
    BlockKey,
    block_spec,
    candidate_ops,
    network_spec,
    op_key,
    ops_for_architecture,
    ops_for_space,
    parse_block_key,
)
from fbnet_core.space import IMAGENET_CLASSES, SearchSpace, SpaceParams, fbnet_space

ALL_K3_E6 = Architecture(("k3_e6",) * 22)
IMAGENET = SpaceParams(num_classes=IMAGENET_CLASSES)


def test_pinned_keys(space224: SearchSpace) -> None:
    # Keys are stored in every LUT; changing their format orphans measured entries, so it must be deliberate.
    keys = [op.key for op in ops_for_space(space224)]
    assert keys[:2] == ["stem.k3.c3.o16.s2.h224w224", "blk.k3_e1.c16.o16.s1.h112w112"]
    assert keys[-2:] == ["head.c352.o1984.h7w7", "poolfc.c1984.o1000.h7w7"]
    assert "blk.k5_e1_g2.c16.o24.s2.h112w112" in keys
    assert "blk.skip.c184.o352.s1.h7w7" in keys
    assert op_key(network_spec(ALL_K3_E6, IMAGENET)) == "net.r224.28dfe9349bbcf200"


def test_space_needs_12_signatures_times_9_candidates(space224: SearchSpace) -> None:
    entries = [op for layer in candidate_ops(space224) for op in layer]
    unique_entries = {op.key if op else f"identity{i}" for i, op in enumerate(entries)}
    ops = ops_for_space(space224)
    blocks = [op for op in ops if op.spec["kind"] == "block"]
    identities = {
        (layer.in_channels, layer.out_channels, layer.input_hw)
        for layer in space224.layers
        if layer.stride == 1 and layer.in_channels == layer.out_channels
    }
    # 12 signatures x 9 candidates = 108 LUT entries; the 6 identity skips among them are free, not measured.
    assert len(identities) == 6
    assert len(blocks) == 12 * len(CANDIDATES) - len(identities) == 102
    assert len(unique_entries - {k for k in unique_entries if k.startswith("identity")}) == 102
    assert [op.spec["kind"] for op in ops if op.spec["kind"] != "block"] == ["stem", "head", "pool_fc"]
    assert len(ops) == 105


@pytest.mark.parametrize(
    "params",
    [SpaceParams(), SpaceParams(resolution=96, width=0.35), SpaceParams(resolution=32, small_input=True)],
    ids=["224", "96x0.35", "32small"],
)
def test_keys_are_unique_url_safe_and_identify_the_spec(params: SpaceParams) -> None:
    from fbnet_core.space import build_space

    ops = ops_for_space(build_space(params))
    assert all(KEY_PATTERN.fullmatch(op.key) for op in ops)
    assert len({op.key for op in ops}) == len(ops)
    assert len({json.dumps(op.spec, sort_keys=True) for op in ops}) == len(ops)


def test_layers_and_spaces_share_keys(space224: SearchSpace) -> None:
    # Layers 3 and 4 have one signature; a 100-class space differs from the 1000-class one only in its fc.
    assert block_spec("k5_e6", space224.layers[2]) == block_spec("k5_e6", space224.layers[3])
    other = {op.key for op in ops_for_space(fbnet_space(num_classes=100))}
    mine = {op.key for op in ops_for_space(space224)}
    assert mine - other == {"poolfc.c1984.o1000.h7w7"}
    assert other - mine == {"poolfc.c1984.o100.h7w7"}


def test_keys_are_stable_across_processes(space224: SearchSpace) -> None:
    code = (
        "from fbnet_core.keys import ops_for_space, op_key, network_spec\n"
        "from fbnet_core.space import fbnet_space, SpaceParams\n"
        "from fbnet_core.arch import Architecture\n"
        "print('\\n'.join(op.key for op in ops_for_space(fbnet_space(num_classes=1000))))\n"
        "print(op_key(network_spec(Architecture(('k3_e6',) * 22), SpaceParams(num_classes=1000))))\n"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    mine = [op.key for op in ops_for_space(space224)] + [op_key(network_spec(ALL_K3_E6, IMAGENET))]
    assert other.stdout.split() == mine


def test_network_key_ignores_int_vs_float_width() -> None:
    spec = network_spec(ALL_K3_E6, IMAGENET)
    as_int = {**spec, "space": {**spec["space"], "width": 1}}
    assert op_key(as_int) == op_key(spec)
    assert op_key(network_spec(ALL_K3_E6, SpaceParams(num_classes=10))) != op_key(spec)


def test_architecture_ops_skip_identities(space224: SearchSpace) -> None:
    arch = Architecture.from_string("-".join(["skip"] * 22))
    ops = ops_for_architecture(arch, space224)
    # Only the 6 stage-first layers whose shape changes (1, 5, 9, 13, 17, 21) need a projection.
    assert [op.key.split(".")[0] for op in ops] == ["stem"] + ["blk"] * 6 + ["head", "poolfc"]


BASE = {
    "kind": "block",
    "batch": 1,
    "dtype": "float32",
    "input_shape": [1, 16, 112, 112],
    "block": "k3_e6",
    "out_channels": 24,
    "stride": 2,
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "conv"}, "'kind' must be one of"),
        ({"batch": 8}, "'batch' must be 1"),
        ({"dtype": "float16"}, "'dtype' must be 'float32'"),
        ({"input_shape": [1, 16, 112]}, "'input_shape' must be 4 positive integers"),
        ({"input_shape": [2, 16, 112, 112]}, "must have batch 1"),
        ({"stride": 0}, "field 'stride' is invalid"),
        ({"stride": 3}, "stride must be one of"),
        ({"out_channels": "24"}, "field 'out_channels' is invalid"),
        ({"colour": "red"}, "unknown field"),
        ({"out_channels": 16, "stride": 1, "block": "skip"}, "identity skip is not an op"),
    ],
)
def test_bad_specs_name_the_field(change: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidOpSpecError, match=message):
        op_key({**BASE, **change})


def test_missing_fields_are_named() -> None:
    with pytest.raises(InvalidOpSpecError, match="missing field 'stride'"):
        op_key({k: v for k, v in BASE.items() if k != "stride"})
    with pytest.raises(InvalidOpSpecError, match=r"missing field\(s\) \['dtype'\]"):
        op_key({k: v for k, v in BASE.items() if k != "dtype"})
    with pytest.raises(UnknownBlockError):
        op_key({**BASE, "block": "k9_e9"})


def test_bad_network_spec_is_a_typed_error() -> None:
    spec = network_spec(ALL_K3_E6, IMAGENET)
    with pytest.raises(InvalidOpSpecError, match="input_shape must be"):
        op_key({**spec, "input_shape": [1, 3, 96, 96]})
    with pytest.raises(InvalidOpSpecError, match="22 blocks"):
        op_key({**spec, "blocks": "k3_e6"})


def test_every_block_key_parses_back_to_its_spec_and_no_other_key_does(space224: SearchSpace) -> None:
    ops = ops_for_space(space224)
    blocks = [op for op in ops if op.spec["kind"] == "block"]
    assert blocks and len(blocks) < len(ops)
    for op in blocks:
        _, channels, height, width = op.spec["input_shape"]
        assert parse_block_key(op.key) == BlockKey(
            op.spec["block"], channels, op.spec["out_channels"], op.spec["stride"], (height, width)
        )
    assert all(parse_block_key(op.key) is None for op in ops if op.spec["kind"] != "block")
    assert parse_block_key("blk.k3_e6.c16.o24.s2.h112w112.extra") is None
