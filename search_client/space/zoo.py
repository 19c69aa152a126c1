"""The model zoo: the paper's FBNets and the MobileNetV2 baselines, by name.

FBNet entries are data (an architecture on a space); MobileNetV2 has its own builder (mobilenetv2.py).
`paper` holds the figures of the paper's table (224x224, S8 latency, ImageNet top-1) where it has them.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from fbnet_core.arch import Architecture
from fbnet_core.keys import OpSpec, mobilenetv2_spec, network_spec
from fbnet_core.space import IMAGE_CHANNELS, IMAGENET_CLASSES, SpaceParams, build_space
from search_client.errors import UnknownModelError
from search_client.space.mobilenetv2 import MobileNetV2
from search_client.space.model import build_model


@dataclass(frozen=True)
class PaperFigures:
    params_m: float
    madds_m: float
    s8_latency_ms: float
    top1: float


@dataclass(frozen=True)
class FBNetEntry:
    name: str
    arch: Architecture
    params: SpaceParams
    paper: PaperFigures | None = None

    @property
    def resolution(self) -> int:
        return self.params.resolution

    def build(self) -> nn.Module:
        return build_model(self.arch, build_space(self.params))

    def spec(self) -> OpSpec:
        """The whole network as an op (kind "network"), to export and measure end to end."""
        return network_spec(self.arch, self.params)


@dataclass(frozen=True)
class MobileNetV2Entry:
    name: str
    width: float
    paper: PaperFigures | None = None
    resolution: int = 224
    num_classes: int = 1000

    def build(self) -> nn.Module:
        return MobileNetV2(self.width, self.num_classes)

    def spec(self) -> OpSpec:
        return mobilenetv2_spec(self.width, self.num_classes, self.resolution)


ZooEntry = FBNetEntry | MobileNetV2Entry


def input_shape(entry: ZooEntry) -> tuple[int, int, int, int]:
    return (1, IMAGE_CHANNELS, entry.resolution, entry.resolution)


def _fbnet(
    name: str,
    stages: str,
    head_channels: int = 1984,
    paper: PaperFigures | None = None,
    resolution: int = 224,
    width: float = 1.0,
) -> FBNetEntry:
    # Written stage by stage as in the paper's figure ("|" between stages) so they are easy to check by eye.
    arch = Architecture(tuple(stages.replace("|", " ").split()))
    params = SpaceParams(resolution, width, IMAGENET_CLASSES, head_channels, small_input=False)
    return FBNetEntry(name, arch, params, paper)


_ENTRIES: tuple[ZooEntry, ...] = (
    _fbnet(
        "fbnet_a",
        "skip | k3_e3 k3_e1 skip skip | k5_e6 k3_e3 k5_e1 k3_e3 | k5_e6 k5_e3 k5_e1_g2 k5_e6"
        " | k3_e6 k5_e1_g2 k5_e3 k3_e1_g2 | k5_e6 k5_e6 k5_e3 k5_e6 | k5_e6",
        head_channels=1504,
        paper=PaperFigures(4.3, 249, 19.8, 73.0),
    ),
    # Layer 11 is k5_e1 as in the paper's figure (the released code has k5_e6); the figure gives the 295M.
    _fbnet(
        "fbnet_b",
        "k3_e1 | k3_e6 k5_e1 k3_e1 k3_e1 | k5_e6 k5_e3 k3_e6 k5_e6 | k5_e6 k5_e1 skip k5_e3"
        " | k5_e6 k3_e1 k5_e1 k5_e3 | k5_e6 k5_e1 k5_e6 k5_e6 | k3_e6",
        paper=PaperFigures(4.5, 295, 23.1, 74.1),
    ),
    _fbnet(
        "fbnet_c",
        "k3_e1 | k3_e6 skip k3_e1 k3_e1 | k5_e6 k5_e3 k5_e6 k3_e6 | k5_e6 k5_e3 k5_e6 k5_e6"
        " | k5_e6 k5_e6 k5_e6 k5_e3 | k5_e6 k5_e6 k5_e6 k5_e6 | k3_e6",
        paper=PaperFigures(5.5, 375, 28.1, 74.9),
    ),
    _fbnet(
        "fbnet_iphonex",
        "skip | k3_e6 k3_e1 k3_e1 k3_e1 | k3_e6 k3_e6 k3_e6 k3_e6 | k3_e6 k3_e6 k3_e3 k3_e6"
        " | k3_e6 k3_e3 k3_e3 k3_e3 | k5_e6 k5_e6 k5_e6 k5_e3 | k5_e6",
    ),
    _fbnet(
        "fbnet_s8",
        "k3_e1 | k3_e3 k3_e1 skip skip | k5_e6 k3_e3 k3_e3 k3_e6 | k5_e6 k5_e3 k5_e3 k5_e3"
        " | k3_e6 k5_e3 k5_e3 k5_e3 | k5_e6 k5_e6 k5_e3 k5_e6 | k5_e6",
    ),
    _fbnet(
        "fbnet_96_035_1",
        "k3_e1 | k3_e6 k3_e6 skip skip | k5_e6 k5_e6 skip skip | k5_e6 skip skip skip"
        " | k3_e6 skip skip skip | k5_e6 k5_e6 skip skip | k5_e6",
        resolution=96,
        width=0.35,
    ),
    MobileNetV2Entry("mobilenetv2_100", 1.0, PaperFigures(3.4, 300, 21.7, 72.0)),
    MobileNetV2Entry("mobilenetv2_130", 1.3, PaperFigures(5.3, 509, 33.8, 74.4)),
    MobileNetV2Entry("mobilenetv2_140", 1.4, PaperFigures(6.9, 585, 37.4, 74.7)),
)
ZOO: dict[str, ZooEntry] = {entry.name: entry for entry in _ENTRIES}


def get_model(name: str) -> ZooEntry:
    try:
        return ZOO[name]
    except KeyError as exc:
        raise UnknownModelError(name, ZOO) from exc
