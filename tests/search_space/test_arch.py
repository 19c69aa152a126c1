from __future__ import annotations

import json
from pathlib import Path

import pytest

from fbnet_core.arch import Architecture
from fbnet_core.errors import InvalidArchitectureError, UnknownBlockError
from fbnet_core.formats.architecture_file import ArchitectureFile, load_architecture, save_architecture
from fbnet_core.space import SpaceParams

FBNET_A = (
    "skip-k3_e3-k3_e1-skip-skip-k5_e6-k3_e3-k5_e1-k3_e3-k5_e6-k5_e3-k5_e1_g2-k5_e6"
    "-k3_e6-k5_e1_g2-k5_e3-k3_e1_g2-k5_e6-k5_e6-k5_e3-k5_e6-k5_e6"
)


def test_string_round_trip() -> None:
    arch = Architecture.from_string(FBNET_A)
    assert arch.blocks[0] == "skip" and arch.blocks[-1] == "k5_e6"
    assert str(arch) == FBNET_A
    assert Architecture.from_string(str(arch)) == arch


def test_json_round_trip(tmp_path: Path) -> None:
    arch = Architecture.from_string(FBNET_A)
    params = SpaceParams(resolution=96, width=0.35, head_channels=1504)
    path = tmp_path / "arch.json"
    save_architecture(path, arch, params)
    assert load_architecture(path) == ArchitectureFile(arch, params)
    save_architecture(path, arch, params, predicted_latency_ms=12.5)
    assert load_architecture(path) == ArchitectureFile(arch, params, 12.5)


def test_json_without_space_uses_the_imagenet_space(tmp_path: Path) -> None:
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"blocks": FBNET_A.split("-")}))
    assert load_architecture(path).params == SpaceParams()


def test_wrong_length_is_a_typed_error() -> None:
    with pytest.raises(InvalidArchitectureError, match="22 blocks.*got 21"):
        Architecture.from_string(FBNET_A.rsplit("-", 1)[0])


def test_unknown_block_is_a_typed_error() -> None:
    with pytest.raises(UnknownBlockError, match="'k7_e6'.*valid blocks"):
        Architecture.from_string(FBNET_A.replace("skip", "k7_e6", 1))


@pytest.mark.parametrize("text", ["not json", '{"layers": []}', '{"blocks": [1, 2]}', "[]"])
def test_malformed_json_is_a_typed_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "arch.json"
    path.write_text(text)
    with pytest.raises(InvalidArchitectureError):
        load_architecture(path)


def test_bad_space_in_json_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "arch.json"
    save_architecture(path, Architecture.from_string(FBNET_A), SpaceParams())
    path.write_text(path.read_text().replace('"resolution": 224', '"resolution": 100'))
    with pytest.raises(InvalidArchitectureError, match="not a multiple of 32"):
        load_architecture(path)
