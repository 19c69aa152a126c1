from __future__ import annotations

import pytest

from fbnet_core.arch import Architecture
from fbnet_core.errors import MissingLutEntries
from fbnet_core.keys import ops_for_space
from fbnet_core.predict import latency_breakdown_us, predict_latency_us
from fbnet_core.space import SearchSpace, fbnet_space

ALL_SKIP = Architecture(("skip",) * 22)
ALL_K5_E6 = Architecture(("k5_e6",) * 22)


def _lut(space: SearchSpace) -> dict[str, float]:
    # Distinct latencies per op (its position), so a wrong key or a dropped op changes the sum.
    return {op.key: 10.0 + index for index, op in enumerate(ops_for_space(space))}


def test_sum_of_ops_including_fixed_ones(space224: SearchSpace) -> None:
    lut = _lut(space224)
    breakdown = latency_breakdown_us(lut, ALL_K5_E6, space224)
    assert len(breakdown) == 22 + 3
    assert breakdown[0][0].startswith("stem.") and breakdown[-1][0].startswith("poolfc.")
    assert predict_latency_us(lut, ALL_K5_E6, space224) == pytest.approx(sum(lut[k] for k, _ in breakdown))


def test_identity_skips_cost_nothing(space224: SearchSpace) -> None:
    lut = _lut(space224)
    projections = [
        f"blk.skip.c{layer.in_channels}.o{layer.out_channels}.s{layer.stride}.h{layer.input_hw[0]}w{layer.input_hw[1]}"
        for layer in space224.layers
        if layer.stride != 1 or layer.in_channels != layer.out_channels
    ]
    fixed = ["stem.k3.c3.o16.s2.h224w224", "head.c352.o1984.h7w7", "poolfc.c1984.o1000.h7w7"]
    assert predict_latency_us(lut, ALL_SKIP, space224) == pytest.approx(
        sum(lut[k] for k in projections + fixed)
    )


def test_repeated_layers_count_each_time(space224: SearchSpace) -> None:
    lut = _lut(space224)
    one = list(ALL_SKIP.blocks)
    two = list(ALL_SKIP.blocks)
    two[2] = one[2] = "k3_e3"
    two[3] = "k3_e3"  # layers 3 and 4 share a signature: same key, counted twice
    key = "blk.k3_e3.c24.o24.s1.h56w56"
    difference = predict_latency_us(lut, Architecture(tuple(two)), space224) - predict_latency_us(
        lut, Architecture(tuple(one)), space224
    )
    assert difference == pytest.approx(lut[key])


def test_missing_entries_are_all_listed(space224: SearchSpace) -> None:
    lut = _lut(space224)
    del lut["head.c352.o1984.h7w7"]
    del lut["blk.k5_e6.c16.o16.s1.h112w112"]
    with pytest.raises(MissingLutEntries) as excinfo:
        predict_latency_us(lut, ALL_K5_E6, space224)
    assert excinfo.value.missing_keys == ("blk.k5_e6.c16.o16.s1.h112w112", "head.c352.o1984.h7w7")
    assert "2 LUT entries missing" in str(excinfo.value)


def test_a_lut_of_another_space_does_not_fit() -> None:
    lut = _lut(fbnet_space())
    with pytest.raises(MissingLutEntries):
        predict_latency_us(lut, ALL_K5_E6, fbnet_space(resolution=96))
