"""The LUT as a (layers x candidates) latency tensor: values, the expected-latency contraction, missing keys."""

from __future__ import annotations

import pytest
import torch

from fbnet_core.arch import Architecture
from fbnet_core.blocks import CANDIDATES
from fbnet_core.errors import MissingLutEntries
from fbnet_core.keys import candidate_ops, fixed_ops, ops_for_space
from fbnet_core.predict import predict_latency_us
from fbnet_core.space import fbnet_space
from search_client.lut.latency import build_latency_table, latency_table_for_space


@pytest.fixture(scope="module")
def space():
    return fbnet_space(resolution=32, width=0.25, num_classes=10, head_channels=64, small_input=True)


def distinct_lut_us(space) -> dict[str, float]:
    """A LUT where every op has a different latency, so a wrong row or column cannot go unnoticed."""
    return {op.key: 50.0 + 7.0 * index for index, op in enumerate(ops_for_space(space))}


def test_table_rows_follow_layers_and_columns_follow_candidates(space) -> None:
    lut_us = distinct_lut_us(space)
    table = latency_table_for_space(space, lut_us)
    assert table.block_ms.shape == (22, len(CANDIDATES))
    for layer, row in enumerate(candidate_ops(space)):
        for column, op in enumerate(row):
            expected_ms = 0.0 if op is None else lut_us[op.key] / 1000.0
            assert table.block_ms[layer, column].item() == pytest.approx(expected_ms)
    assert table.fixed_ms == pytest.approx(sum(lut_us[op.key] for op in fixed_ops(space)) / 1000.0)


def test_identity_skips_cost_nothing_and_projection_skips_are_measured(space) -> None:
    table = latency_table_for_space(space, distinct_lut_us(space))
    skip = CANDIDATES.index("skip")
    identity_layers = [
        layer.index for layer in space.layers if layer.stride == 1 and layer.in_channels == layer.out_channels
    ]
    projection_layers = [layer.index for layer in space.layers if layer.index not in identity_layers]
    assert identity_layers and projection_layers
    assert all(table.block_ms[i, skip] == 0.0 for i in identity_layers)
    assert all(table.block_ms[i, skip] > 0.0 for i in projection_layers)


def test_expected_latency_equals_hand_computed_sum(space) -> None:
    table = latency_table_for_space(space, distinct_lut_us(space))
    generator = torch.Generator().manual_seed(3)
    weights = torch.softmax(torch.randn(4, 22, len(CANDIDATES), generator=generator), dim=-1)
    by_hand = [
        table.fixed_ms
        + sum(
            float(weights[b, layer, k]) * float(table.block_ms[layer, k])
            for layer in range(22)
            for k in range(len(CANDIDATES))
        )
        for b in range(4)
    ]
    assert table.expected_ms(weights).tolist() == pytest.approx(by_hand, rel=1e-5)


def test_one_hot_weights_give_the_architecture_latency_the_lut_sum_predicts(space) -> None:
    lut_us = distinct_lut_us(space)
    table = latency_table_for_space(space, lut_us)
    blocks = [CANDIDATES[(3 * layer) % len(CANDIDATES)] for layer in range(22)]
    one_hot = torch.zeros(1, 22, len(CANDIDATES))
    for layer, name in enumerate(blocks):
        one_hot[0, layer, CANDIDATES.index(name)] = 1.0
    predicted_ms = predict_latency_us(lut_us, Architecture(tuple(blocks)), space) / 1000.0
    assert table.expected_ms(one_hot).item() == pytest.approx(predicted_ms, rel=1e-6)
    fastest = Architecture(tuple(CANDIDATES[int(i)] for i in table.block_ms.argmin(dim=1)))
    assert table.min_ms() == pytest.approx(predict_latency_us(lut_us, fastest, space) / 1000.0, rel=1e-6)


def test_missing_entries_are_reported_by_key(space) -> None:
    lut_us = distinct_lut_us(space)
    removed = sorted(lut_us)[:3]
    for key in removed:
        del lut_us[key]
    with pytest.raises(MissingLutEntries) as caught:
        latency_table_for_space(space, lut_us)
    assert list(caught.value.missing_keys) == removed
    assert removed[0] in str(caught.value)


def test_build_table_rejects_nothing_it_does_not_need() -> None:
    table = build_latency_table({"x": 2000.0, "f": 500.0, "unused": 1.0}, [["x", None]], ["f"])
    assert table.block_ms.tolist() == [[2.0, 0.0]]
    assert table.fixed_ms == 0.5
