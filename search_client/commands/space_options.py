"""The space options every `dnas` command takes, built from `SpaceParams`' fields (their defaults and help
text live there once), `--space NAME`: a space registered on the server by `dnas lut request`, and `--format`:
the model format a space's ops are compiled to.

Each option defaults to None ("not given"); `space_params` then fills it with the one rule, so every command
means the same space by the same flags.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Annotated, Any

import typer

from fbnet_core.client import NotFoundError, ProfilerClient
from fbnet_core.errors import InvalidSpaceError
from fbnet_core.model_formats import MODEL_FORMATS
from fbnet_core.space import SpaceParams, space_params, space_params_from_dict

_DEFAULTS = SpaceParams()
# The command-line spelling of each field; the value shown is the one a user types.
FLAGS: dict[str, str] = {
    "resolution": "--resolution",
    "width": "--width",
    "num_classes": "--num-classes",
    "head_channels": "--head-channels",
    "small_input": "--small-input",
}


def _help(name: str) -> str:
    field = next(f for f in fields(SpaceParams) if f.name == name)
    text = str(field.metadata["help"])
    # small_input's default follows the resolution; its help says how.
    return text if name == "small_input" else f"{text} Default {getattr(_DEFAULTS, name)}."


Resolution = Annotated[int | None, typer.Option(FLAGS["resolution"], help=_help("resolution"), show_default=False)]
Width = Annotated[float | None, typer.Option(FLAGS["width"], help=_help("width"), show_default=False)]
NumClasses = Annotated[
    int | None, typer.Option(FLAGS["num_classes"], help=_help("num_classes"), show_default=False)
]
HeadChannels = Annotated[
    int | None, typer.Option(FLAGS["head_channels"], help=_help("head_channels"), show_default=False)
]
SmallInput = Annotated[
    bool | None,
    typer.Option(f"{FLAGS['small_input']}/--imagenet-strides", help=_help("small_input"), show_default=False),
]
SpaceName = Annotated[
    str | None,
    typer.Option(
        "--space",
        help="A space registered on the server (`dnas lut request` registers one); space flags given too must "
        "agree with it.",
    ),
]


@dataclass(frozen=True)
class SpaceFlags:
    """The space flags as given on the command line; None = not given."""

    resolution: int | None = None
    width: float | None = None
    num_classes: int | None = None
    head_channels: int | None = None
    small_input: bool | None = None

    def given(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if value is not None}

    def params(self) -> SpaceParams:
        """The space these flags mean, unset fields filled by the one rule (fbnet_core.space.space_params)."""
        return space_params(**asdict(self))


def flag_value(name: str, value: object) -> str:
    """How a user types `name=value`: `--num-classes 1000`, `--small-input`, `--imagenet-strides`."""
    if name == "small_input":
        return "--small-input" if value else "--imagenet-strides"
    return f"{FLAGS[name]} {value}"


def fetch_space(client: ProfilerClient, name: str) -> SpaceParams | None:
    """The parameters of the space `name` on the server; None when the server has no such space."""
    try:
        body = client.get_space(name)
    except NotFoundError:
        return None
    try:
        return space_params_from_dict(body.get("params"))
    except InvalidSpaceError as exc:
        raise InvalidSpaceError(f"--space {name}: the server's parameters are not an FBNet space: {exc}") from exc


def resolve_space(
    flags: SpaceFlags, name: str | None, connect: Callable[[], ProfilerClient]
) -> SpaceParams:
    """The space a command works on: `--space NAME` from the server (flags given too must agree), or the
    flags with the one rule. `connect` opens a client only when a name is given."""
    if name is None:
        return flags.params()
    with connect() as client:
        named = fetch_space(client, name)
    if named is None:
        raise InvalidSpaceError(f"--space: the server has no space {name!r} (`dnas lut request --space {name}` registers one)")
    for field_name, value in flags.given().items():
        if getattr(named, field_name) != value:
            raise InvalidSpaceError(
                f"--space {name} has {field_name}={getattr(named, field_name)}, but {flag_value(field_name, value)} "
                "was given: drop the flag or name another space"
            )
    return named


ModelFormatOption = Annotated[
    str | None,
    typer.Option(
        "--format",
        help=f"Model format the ops are compiled to: {', '.join(MODEL_FORMATS)} (onnx for onnxruntime, pte for "
        "ExecuTorch, tflite for LiteRT; a .tflite needs the LiteRT converter, scripts/setup-litert-converter.sh); "
        "default: the device's.",
    ),
]
