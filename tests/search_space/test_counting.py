from __future__ import annotations

import pytest
from torch import nn

from fbnet_core.arch import Architecture
from fbnet_core.space import fbnet_space
from search_client.space.blocks import make_block
from search_client.space.counting import count_model
from search_client.space.model import build_model


def test_counts_a_conv_and_a_linear_by_formula() -> None:
    model = nn.Sequential(
        nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6), nn.Flatten(), nn.Linear(96, 10)
    )
    counts = count_model(model, (1, 4, 8, 8))
    assert [layer.name for layer in counts.layers] == ["0", "1", "2", "3"]
    assert [layer.madds for layer in counts.layers] == [6 * 4 * 4 * 4 * 9, 0, 0, 96 * 10]
    assert [layer.params for layer in counts.layers] == [6 * 4 * 9 + 6, 12, 0, 96 * 10 + 10]


def test_grouped_and_depthwise_convs() -> None:
    block = make_block("k3_e1_g2", 16, 16, 1)
    madds = count_model(nn.Sequential(block), (1, 16, 4, 4)).madds
    pixels = 16
    assert madds == pixels * (16 * 8 + 16 * 9 + 16 * 8)


def test_per_layer_rows_follow_the_space() -> None:
    space = fbnet_space(resolution=32, small_input=True, num_classes=10)
    model = build_model(Architecture(("k3_e3",) * 22), space)
    counts = count_model(model, space.input_shape)
    names = [layer.name for layer in counts.layers]
    assert names == ["stem"] + [f"layers.{i}" for i in range(22)] + ["head", "classifier"]
    assert counts.params == sum(p.numel() for p in model.parameters())
    assert all(layer.madds > 0 for layer in counts.layers)


def test_batch_other_than_one_is_refused() -> None:
    with pytest.raises(ValueError, match="batch must be 1"):
        count_model(nn.Conv2d(3, 3, 1), (2, 3, 4, 4))
