from __future__ import annotations

import pytest

from fbnet_core.errors import InvalidSpaceError
from fbnet_core.space import SearchSpace, SpaceParams, fbnet_space, make_divisible, space_params_from_dict


def test_imagenet_space_matches_the_papers_table(space224: SearchSpace) -> None:
    # Table 1 of the paper: (input hw, in channels, out channels, stride) of each stage's first layer.
    firsts = [space224.layers[i] for i in (0, 1, 5, 9, 13, 17, 21)]
    assert [(layer.input_hw[0], layer.in_channels, layer.out_channels, layer.stride) for layer in firsts] == [
        (112, 16, 16, 1),
        (112, 16, 24, 2),
        (56, 24, 32, 2),
        (28, 32, 64, 2),
        (14, 64, 112, 1),
        (14, 112, 184, 2),
        (7, 184, 352, 1),
    ]
    assert len(space224.layers) == 22
    assert [layer.index for layer in space224.layers] == list(range(22))
    assert (space224.stem.out_channels, space224.stem.stride, space224.stem.input_hw) == (16, 2, (224, 224))
    assert (space224.head.in_channels, space224.head.out_channels, space224.head.input_hw) == (
        352,
        1984,
        (7, 7),
    )
    assert (space224.classifier.in_channels, space224.classifier.num_classes) == (1984, 1000)


def test_only_the_first_layer_of_a_stage_strides(space224: SearchSpace) -> None:
    for previous, layer in zip(space224.layers, space224.layers[1:], strict=False):
        assert layer.input_hw == previous.output_hw
        assert layer.in_channels == previous.out_channels
        if layer.out_channels == layer.in_channels:
            assert layer.stride == 1


def test_twelve_distinct_layer_signatures(space224: SearchSpace) -> None:
    signatures = {
        (layer.in_channels, layer.out_channels, layer.input_hw, layer.stride) for layer in space224.layers
    }
    assert len(signatures) == 12


def test_small_input_schedule_ends_on_4x4() -> None:
    space = fbnet_space(resolution=32, num_classes=10, small_input=True)
    assert space.stem.stride == 1 and space.layers[1].stride == 1
    assert space.head.input_hw == (4, 4)
    # Small input is the default below 100 px; the ImageNet schedule ends on 1x1 at 32.
    assert fbnet_space(resolution=32).head.input_hw == (4, 4)
    assert fbnet_space(resolution=32, small_input=False).head.input_hw == (1, 1)
    assert fbnet_space(resolution=96).params.small_input and not fbnet_space(resolution=128).params.small_input


def test_width_multiplier_rounds_to_multiples_of_8() -> None:
    space = fbnet_space(resolution=96, width=0.35)
    channels = [space.stem.out_channels] + [layer.out_channels for layer in space.layers]
    assert all(c % 8 == 0 for c in channels)
    assert channels[0] == 8 and space.layers[-1].out_channels == 120
    assert make_divisible(11.2) == 16  # never more than 10% below the requested width
    assert make_divisible(16 * 1.3) == 24


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resolution": 0}, "positive integer"),
        ({"resolution": 100}, "not a multiple of 32"),
        ({"resolution": 36, "small_input": True}, "not a multiple of 8, the small-input"),
        ({"width": 0.0}, "width must be a positive"),
        ({"num_classes": 0}, "num_classes"),
        ({"head_channels": -1}, "head_channels"),
    ],
)
def test_bad_space_parameters_are_typed_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidSpaceError, match=message):
        fbnet_space(**kwargs)  # type: ignore[arg-type]


def test_space_params_json_decoding() -> None:
    assert space_params_from_dict({}) == SpaceParams()
    assert space_params_from_dict({"resolution": 96, "width": 1}).width == 1.0
    with pytest.raises(InvalidSpaceError, match="unknown space parameter"):
        space_params_from_dict({"depth": 3})
    with pytest.raises(InvalidSpaceError, match="'resolution' has the wrong type"):
        space_params_from_dict({"resolution": "224"})
