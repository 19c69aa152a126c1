"""`dnas models`, `dnas space`, `dnas export-ops`: the zoo, the ops a search space needs, and their ONNX files."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import track
from rich.table import Table

from fbnet_core.blocks import CANDIDATES
from fbnet_core.client import ProfilerError
from fbnet_core.errors import FbnetLutError
from fbnet_core.formats.ops_manifest import OPS_MANIFEST_NAME, ManifestEntry, write_manifest
from fbnet_core.keys import Op, candidate_ops, make_op, ops_for_space
from fbnet_core.model_formats import FORMAT_SUFFIX, check_format
from fbnet_core.network_fit import FIT_NETWORKS, lut_ops
from fbnet_core.space import SearchSpace, build_space
from search_client.commands.lut_cmds import Server, Token, connect
from search_client.commands.space_options import (
    HeadChannels,
    ModelFormatOption,
    NumClasses,
    Resolution,
    SmallInput,
    SpaceFlags,
    SpaceName,
    Width,
    resolve_space,
)

# The zoo, the counts and the ONNX export build torch modules: they load inside the commands that use them.
if TYPE_CHECKING:
    from search_client.space.counting import ModelCount
    from search_client.space.zoo import ZooEntry

AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _fail(message: str) -> typer.Exit:
    typer.secho(f"dnas: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)


def resolved_space(
    flags: SpaceFlags, name: str | None, server: str | None, token: str | None
) -> SearchSpace:
    """The space of `--space NAME` or of the flags (one rule, see space_options.py), built; one line if invalid."""
    try:
        return build_space(resolve_space(flags, name, lambda: connect(server, token)))
    except (FbnetLutError, ProfilerError) as exc:
        raise _fail(str(exc)) from exc


def _model_json(entry: ZooEntry, counts: ModelCount) -> dict[str, object]:
    return {
        "name": entry.name,
        "resolution": entry.resolution,
        "params": counts.params,
        "madds": counts.madds,
        "paper": asdict(entry.paper) if entry.paper else None,
    }


def _per_layer(name: str, as_json: bool) -> None:
    from search_client.space.counting import count_model
    from search_client.space.zoo import get_model, input_shape

    try:
        entry = get_model(name)
    except FbnetLutError as exc:
        raise _fail(f"--model: {exc}") from exc
    counts = count_model(entry.build(), input_shape(entry))
    if as_json:
        layers = [asdict(layer) for layer in counts.layers]
        typer.echo(json.dumps({**_model_json(entry, counts), "layers": layers}, indent=2))
        return
    table = Table(
        "layer", "params", "mult-adds", title=f"{entry.name} at {entry.resolution}x{entry.resolution}"
    )
    for layer in counts.layers:
        table.add_row(layer.name, f"{layer.params:,}", f"{layer.madds:,}")
    table.add_row("total", f"{counts.params:,}", f"{counts.madds:,}")
    Console().print(table)


def models(
    as_json: AsJson = False,
    model: Annotated[str | None, typer.Option("--model", help="Show this zoo model layer by layer.")] = None,
) -> None:
    """The model zoo: name, input resolution, parameters and multiply-adds (convs + fc), with the paper's figures."""
    from search_client.space.counting import count_model
    from search_client.space.zoo import ZOO, input_shape

    if model is not None:
        _per_layer(model, as_json)
        return
    counted = [(entry, count_model(entry.build(), input_shape(entry))) for entry in ZOO.values()]
    if as_json:
        typer.echo(json.dumps([_model_json(entry, counts) for entry, counts in counted], indent=2))
        return
    table = Table("model", "input", "params", "mult-adds", "paper params", "paper mult-adds", "paper S8 ms")
    for entry, counts in counted:
        paper = entry.paper
        table.add_row(
            entry.name,
            f"{entry.resolution}x{entry.resolution}",
            f"{counts.params / 1e6:.2f}M",
            f"{counts.madds / 1e6:.1f}M",
            f"{paper.params_m}M" if paper else "-",
            f"{paper.madds_m}M" if paper else "-",
            f"{paper.s8_latency_ms}" if paper else "-",
        )
    Console().print(table)


def _summary(space: SearchSpace, ops: list[Op]) -> dict[str, int]:
    signatures = {
        (layer.in_channels, layer.out_channels, layer.input_hw, layer.stride) for layer in space.layers
    }
    blocks = {op.key for layer in candidate_ops(space) for op in layer if op is not None}
    entries = len(signatures) * len(CANDIDATES)
    return {
        "layers": len(space.layers),
        "layer_signatures": len(signatures),
        "candidate_entries": entries,
        "identity_skips": entries - len(blocks),
        "block_ops": len(blocks),
        "fixed_ops": len(ops) - len(blocks),
        "ops": len(ops),
    }


def space(
    space_name: SpaceName = None,
    resolution: Resolution = None,
    width: Width = None,
    num_classes: NumClasses = None,
    head_channels: HeadChannels = None,
    small_input: SmallInput = None,
    as_json: AsJson = False,
    server: Server = None,
    token: Token = None,
) -> None:
    """The unique ops (LUT entries) a search space needs, with their keys; identity skips need none."""
    flags = SpaceFlags(resolution, width, num_classes, head_channels, small_input)
    searched = resolved_space(flags, space_name, server, token)
    ops = ops_for_space(searched)
    summary = _summary(searched, ops)
    if as_json:
        document = {"space": asdict(searched.params), **summary, "entries": [asdict(op) for op in ops]}
        typer.echo(json.dumps(document, indent=2))
        return
    table = Table("key", "kind", "input shape")
    for op in ops:
        table.add_row(op.key, op.spec["kind"], "x".join(str(d) for d in op.spec["input_shape"]))
    console = Console()
    console.print(table)
    console.print(
        f"{summary['layers']} layers, {summary['layer_signatures']} distinct layer signatures x {len(CANDIDATES)} candidates = "
        f"{summary['candidate_entries']} entries, of which {summary['identity_skips']} identity skips are free: "
        f"{summary['block_ops']} block ops + {summary['fixed_ops']} fixed ops = {summary['ops']} ops to measure; "
        f"`dnas lut request` adds {FIT_NETWORKS} whole networks that fit what a network pays beyond its ops"
    )


def _write_if_changed(path: Path, data: bytes) -> None:
    # Re-running export-ops leaves identical files untouched (their mtimes stay, rsync stays cheap).
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)


def export_ops(
    out: Annotated[Path, typer.Option("-o", "--out", "--output", help="Folder for the ONNX files and ops.jsonl.")],
    model_format: ModelFormatOption = None,
    space_name: SpaceName = None,
    resolution: Resolution = None,
    width: Width = None,
    num_classes: NumClasses = None,
    head_channels: HeadChannels = None,
    small_input: SmallInput = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="Also export this zoo model as one whole-network op (repeatable)."),
    ] = None,
    server: Server = None,
    token: Token = None,
) -> None:
    """Write one ONNX file per op plus ops.jsonl (key, spec, file, sha256): the input of `device-agent profile`.
    With --format pte or tflite, each op compiled for that runtime too (ops.jsonl names both files)."""
    from search_client.space.compile import compile_ops
    from search_client.space.export import export_onnx, sha256_hex
    from search_client.space.zoo import get_model

    flags = SpaceFlags(resolution, width, num_classes, head_channels, small_input)
    searched = resolved_space(flags, space_name, server, token)
    try:
        ops = lut_ops(searched) + [make_op(get_model(name).spec()) for name in model or []]
    except FbnetLutError as exc:
        raise _fail(f"--model: {exc}") from exc
    compiled_format = None if model_format in (None, "onnx") else model_format
    try:
        if compiled_format is not None:
            check_format(compiled_format)
        out.mkdir(parents=True, exist_ok=True)
        models: dict[str, dict[str, tuple[str, str]]] = {op.key: {} for op in ops}
        if compiled_format is not None:
            # One batch: the LiteRT converter starts once for all ops.
            typer.echo(f"compiling {len(ops)} ops to .{compiled_format} ...", err=True)
            for op, data in zip(ops, compile_ops([op.spec for op in ops], compiled_format), strict=True):
                file_name = f"{op.key}{FORMAT_SUFFIX[compiled_format]}"
                _write_if_changed(out / file_name, data)
                models[op.key][compiled_format] = (file_name, sha256_hex(data))
        entries = []
        for op in track(ops, description="exporting ops", transient=True):
            data = export_onnx(op.spec)
            file_name = f"{op.key}.onnx"
            _write_if_changed(out / file_name, data)
            entries.append(ManifestEntry(op.key, op.spec, file_name, sha256_hex(data), models[op.key]))
        write_manifest(out / OPS_MANIFEST_NAME, entries)
    except OSError as exc:
        raise _fail(f"--out: cannot write to {out}: {exc}") from exc
    except FbnetLutError as exc:
        raise _fail(str(exc)) from exc
    also = f" and {len(ops)} .{compiled_format} files" if compiled_format else ""
    typer.echo(f"wrote {len(ops)} ONNX files{also} and {out / OPS_MANIFEST_NAME}")


def register(app: typer.Typer) -> None:
    app.command("models")(models)
    app.command("space")(space)
    app.command("export-ops")(export_ops)
