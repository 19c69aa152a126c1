"""The FBNet search space as plain data: stem, 22 searchable layers, head, pool + classifier.

Nothing here builds a module; `keys.py` enumerates LUT entries from this data and the search client's
`search_client/space/model.py` builds networks.

ImageNet schedule (input 224): stem 3x3 conv stride 2, then 7 stages whose first layer carries the stage's
stride (1, 2, 2, 2, 1, 2, 1): total stride 32, a 7x7 final feature map.
Small-input schedule (`small_input=True`, e.g. 32x32 CIFAR-style data): the stem and stage 2 use stride 1, the
rest is unchanged: total stride 8, so a 32x32 input ends on a 4x4 feature map instead of the ImageNet
schedule's 1x1 (a known pitfall of public reimplementations).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from fbnet_core.errors import InvalidSpaceError

# (output channels, number of layers, stride of the stage's first layer), from the paper's Table 1.
FBNET_STAGES: tuple[tuple[int, int, int], ...] = (
    (16, 1, 1),
    (24, 4, 2),
    (32, 4, 2),
    (64, 4, 2),
    (112, 4, 1),
    (184, 4, 2),
    (352, 1, 1),
)
STEM_CHANNELS = 16
STEM_KERNEL_SIZE = 3
IMAGE_CHANNELS = 3
NUM_LAYERS = sum(count for _, count, _ in FBNET_STAGES)
CHANNEL_DIVISOR = 8


def make_divisible(value: float, divisor: int = CHANNEL_DIVISOR) -> int:
    """Round channels to a multiple of `divisor`, never more than 10% below `value` (MobileNet's rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


@dataclass(frozen=True)
class StemSpec:
    in_channels: int
    out_channels: int
    stride: int
    input_hw: tuple[int, int]
    kernel_size: int = STEM_KERNEL_SIZE


@dataclass(frozen=True)
class LayerSpec:
    """One searchable layer: every candidate block at this position sees exactly this shape."""

    index: int
    in_channels: int
    out_channels: int
    stride: int
    input_hw: tuple[int, int]

    @property
    def output_hw(self) -> tuple[int, int]:
        return (self.input_hw[0] // self.stride, self.input_hw[1] // self.stride)


@dataclass(frozen=True)
class HeadSpec:
    """The 1x1 conv + BN + ReLU after the last searchable layer."""

    in_channels: int
    out_channels: int
    input_hw: tuple[int, int]


@dataclass(frozen=True)
class ClassifierSpec:
    """Global average pool + fully connected layer."""

    in_channels: int
    num_classes: int
    input_hw: tuple[int, int]


# Below this input size the small-input stride schedule is the default (`space_params`).
SMALL_INPUT_BELOW_PX = 100
# The classifier's default outputs: the class count of `dnas search`'s default data set (digits), so a LUT
# requested with default options fits a search run with default options.
DEFAULT_NUM_CLASSES = 10
IMAGENET_CLASSES = 1000


def _param(default: object, help_text: str) -> Any:
    # The default and the help text live here once; every command line builds its options from them.
    return dataclasses.field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class SpaceParams:
    """The parameters that define an FBNet space; JSON-able, used in zoo entries and network op specs.

    Build one from partial settings with `space_params` (it applies the small-input rule); constructing the
    dataclass directly takes every field as given.
    """

    resolution: int = _param(224, "Input resolution (pixels, square).")
    width: float = _param(1.0, "Channel multiplier (channels rounded to multiples of 8).")
    num_classes: int = _param(DEFAULT_NUM_CLASSES, "Classifier outputs; a search takes its data set's count.")
    head_channels: int = _param(1984, "Width of the 1x1 head conv.")
    small_input: bool = _param(
        False, f"Stride schedule: total stride 8 instead of 32; default: on below {SMALL_INPUT_BELOW_PX} px."
    )

    def __post_init__(self) -> None:
        # Checked where the parameters are made, so a bad value is one InvalidSpaceError naming it, before any
        # data set, LUT or network is built from it.
        _validate(self)


SPACE_FIELDS: tuple[str, ...] = tuple(SpaceParams.__dataclass_fields__)


def space_params(
    resolution: int | None = None,
    width: float | None = None,
    num_classes: int | None = None,
    head_channels: int | None = None,
    small_input: bool | None = None,
) -> SpaceParams:
    """The one rule every command applies: an unset field takes `SpaceParams`' default, except `small_input`,
    which is on when the resolution is below `SMALL_INPUT_BELOW_PX` (a 32x32 input keeps a 4x4 final map)."""
    defaults = SpaceParams()
    chosen_resolution = defaults.resolution if resolution is None else resolution
    return SpaceParams(
        resolution=chosen_resolution,
        width=defaults.width if width is None else width,
        num_classes=defaults.num_classes if num_classes is None else num_classes,
        head_channels=defaults.head_channels if head_channels is None else head_channels,
        small_input=chosen_resolution < SMALL_INPUT_BELOW_PX if small_input is None else small_input,
    )


@dataclass(frozen=True)
class SearchSpace:
    params: SpaceParams
    stem: StemSpec
    layers: tuple[LayerSpec, ...]
    head: HeadSpec
    classifier: ClassifierSpec

    @property
    def resolution(self) -> int:
        return self.params.resolution

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, IMAGE_CHANNELS, self.params.resolution, self.params.resolution)


def stage_strides(small_input: bool) -> tuple[int, int]:
    """(stem stride, stage-2 first stride): the only two strides the small-input schedule changes."""
    return (1, 1) if small_input else (2, 2)


def total_stride(small_input: bool) -> int:
    stem_stride, stage2_stride = stage_strides(small_input)
    later = math.prod(stride for _, _, stride in FBNET_STAGES[2:])
    return stem_stride * stage2_stride * later


def _validate(params: SpaceParams) -> None:
    if not isinstance(params.resolution, int) or params.resolution < 1:
        raise InvalidSpaceError(f"resolution must be a positive integer, got {params.resolution!r}")
    stride = total_stride(params.small_input)
    if params.resolution % stride:
        schedule = "small-input" if params.small_input else "ImageNet"
        raise InvalidSpaceError(
            f"resolution {params.resolution} is not a multiple of {stride}, the {schedule} schedule's total stride"
        )
    if not math.isfinite(params.width) or params.width <= 0:
        raise InvalidSpaceError(f"width must be a positive number, got {params.width!r}")
    if params.num_classes < 1:
        raise InvalidSpaceError(f"num_classes must be at least 1, got {params.num_classes}")
    if params.head_channels < 1:
        raise InvalidSpaceError(f"head_channels must be at least 1, got {params.head_channels}")


def build_space(params: SpaceParams) -> SearchSpace:
    stem_stride, stage2_stride = stage_strides(params.small_input)
    hw = (params.resolution, params.resolution)
    stem = StemSpec(IMAGE_CHANNELS, make_divisible(STEM_CHANNELS * params.width), stem_stride, hw)
    hw = (hw[0] // stem_stride, hw[1] // stem_stride)
    channels = stem.out_channels
    layers: list[LayerSpec] = []
    for stage_index, (stage_channels, count, first_stride) in enumerate(FBNET_STAGES):
        out_channels = make_divisible(stage_channels * params.width)
        for position in range(count):
            stride = (stage2_stride if stage_index == 1 else first_stride) if position == 0 else 1
            layer = LayerSpec(len(layers), channels, out_channels, stride, hw)
            layers.append(layer)
            channels, hw = out_channels, layer.output_hw
    # The head keeps its width at any channel multiplier (as MobileNetV2 does for width < 1).
    head = HeadSpec(channels, params.head_channels, hw)
    classifier = ClassifierSpec(params.head_channels, params.num_classes, hw)
    return SearchSpace(params, stem, tuple(layers), head, classifier)


def fbnet_space(
    resolution: int | None = None,
    width: float | None = None,
    num_classes: int | None = None,
    head_channels: int | None = None,
    small_input: bool | None = None,
) -> SearchSpace:
    """The space of these settings, unset ones filled by `space_params`' rule."""
    return build_space(space_params(resolution, width, num_classes, head_channels, small_input))


def space_params_from_dict(data: object) -> SpaceParams:
    """Decode JSON space parameters (as written by `dataclasses.asdict`), naming any bad field."""
    if not isinstance(data, dict):
        raise InvalidSpaceError(f"space parameters must be a JSON object, got {type(data).__name__}")
    known = set(SpaceParams.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidSpaceError(f"unknown space parameter(s) {unknown}; valid: {sorted(known)}")
    expected = {
        "resolution": int,
        "width": (int, float),
        "num_classes": int,
        "head_channels": int,
        "small_input": bool,
    }
    for field, kind in expected.items():
        value = data.get(field)
        if field in data and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            raise InvalidSpaceError(f"space parameter {field!r} has the wrong type: {value!r}")
    return SpaceParams(**{**data, "width": float(data.get("width", SpaceParams.width))})
