"""Architectures as data: one candidate-block name per searchable layer.

Compact string form: the 22 names joined by '-', layer 1 first, e.g. `k3_e1-k3_e6-k5_e1-...-k3_e6`.
JSON form: `{"blocks": [...22 names...], "space": {SpaceParams fields}}`; the file that holds it is
formats/architecture_file.py.
Decoding (string/JSON -> Architecture) is separate from building (`model.build_model`), so keys and counts
can be computed without torch modules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from fbnet_core.blocks import BLOCKS, CANDIDATES
from fbnet_core.errors import InvalidArchitectureError, UnknownBlockError
from fbnet_core.space import NUM_LAYERS, SpaceParams

SEPARATOR = "-"


@dataclass(frozen=True)
class Architecture:
    blocks: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.blocks) != NUM_LAYERS:
            raise InvalidArchitectureError(
                f"an architecture has {NUM_LAYERS} blocks, one per searchable layer; got {len(self.blocks)}"
            )
        for name in self.blocks:
            if name not in BLOCKS:
                raise UnknownBlockError(name, CANDIDATES)

    def to_string(self) -> str:
        return SEPARATOR.join(self.blocks)

    def __str__(self) -> str:
        return self.to_string()

    @classmethod
    def from_string(cls, text: str) -> Architecture:
        return cls(tuple(name.strip() for name in text.strip().split(SEPARATOR)))

    def to_dict(self, params: SpaceParams | None = None) -> dict[str, object]:
        data: dict[str, object] = {"blocks": list(self.blocks)}
        if params is not None:
            data["space"] = asdict(params)
        return data

    @classmethod
    def from_dict(cls, data: object) -> Architecture:
        if not isinstance(data, dict) or not isinstance(data.get("blocks"), list):
            raise InvalidArchitectureError('an architecture JSON object needs a "blocks" list of block names')
        blocks = data["blocks"]
        if not all(isinstance(name, str) for name in blocks):
            raise InvalidArchitectureError('"blocks" must be a list of strings')
        return cls(tuple(blocks))
