from __future__ import annotations

import pytest
import torch

from fbnet_core.errors import InvalidOpSpecError
from fbnet_core.keys import Op, op_input_shape, ops_for_space
from fbnet_core.space import fbnet_space
from search_client.space.ops import build_op

OPS_224 = ops_for_space(fbnet_space())
# Output shape of every fixed op and of a block, from the op's spec alone.
_EXPECTED = {
    "stem": lambda s: (
        1,
        s["out_channels"],
        s["input_shape"][2] // s["stride"],
        s["input_shape"][3] // s["stride"],
    ),
    "block": lambda s: (
        1,
        s["out_channels"],
        s["input_shape"][2] // s["stride"],
        s["input_shape"][3] // s["stride"],
    ),
    "head": lambda s: (1, s["out_channels"], *s["input_shape"][2:]),
    "pool_fc": lambda s: (1, s["num_classes"]),
}


@pytest.mark.parametrize("op", OPS_224, ids=lambda op: op.key)
def test_every_op_of_the_224_space_builds_and_runs(op: Op) -> None:
    module = build_op(op.spec).eval()
    shape = op_input_shape(op.spec)
    assert shape == tuple(op.spec["input_shape"])
    with torch.no_grad():
        y = module(torch.randn(shape))
    assert tuple(y.shape) == _EXPECTED[op.spec["kind"]](op.spec)
    assert torch.isfinite(y).all()


def test_build_op_rejects_a_bad_spec() -> None:
    with pytest.raises(InvalidOpSpecError, match="'kind' must be one of"):
        build_op({"kind": "lstm", "batch": 1, "dtype": "float32", "input_shape": [1, 3, 8, 8]})
