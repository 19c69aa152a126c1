"""`dnas lut request` and `dnas lut pull`: fill a device's LUT for a search space, and fetch it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fbnet_core.client import ProfilerClient, ProfilerError
from fbnet_core.dev_tokens import read_dev_tokens
from fbnet_core.errors import FbnetLutError
from fbnet_core.formats.lut_file import write_lut_file
from fbnet_core.keys import ops_for_space
from fbnet_core.space_manifest import space_manifest
from fbnet_core.space_manifest import space_name as server_space_name
from search_client.commands.space_cmds import (
    HeadChannels,
    ModelFormatOption,
    NumClasses,
    Resolution,
    SmallInput,
    SpaceName,
    Width,
    _space,
)
from search_client.lut.client import LutCache, pull_lut, request_lut, wait_for_entries

Server = Annotated[
    str | None,
    typer.Option(
        "--server", envvar="PROFILER_URL", help="Server URL; default: the last `profiler-server serve --dev`."
    ),
]
Token = Annotated[
    str | None,
    typer.Option("--token", envvar="PROFILER_ADMIN_TOKEN", help="Admin token; default: the dev tokens file."),
]
CacheDir = Annotated[
    Path | None,
    typer.Option("--cache-dir", envvar="FBNET_LUT_CACHE", help="LUT cache; default ~/.cache/fbnet-lut."),
]

lut_app = typer.Typer(no_args_is_help=True, help="Request and pull a device's latency LUT.")


def fail(message: str) -> typer.Exit:
    typer.secho(f"dnas: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)


def connect(server: str | None, token: str | None) -> ProfilerClient:
    """A client for `server` with `token`, both defaulting to what `profiler-server serve --dev` wrote."""
    try:
        dev = read_dev_tokens(server)
    except RuntimeError as exc:
        raise fail(str(exc)) from exc
    url = server or (dev.server_url if dev else None)
    if url is None:
        raise fail("--server: no server given and no dev tokens file (run `profiler-server serve --dev`)")
    chosen_token = token or (dev.admin_token if dev else None)
    if chosen_token is None:
        raise fail(f"--token: no admin token for {url} (set PROFILER_ADMIN_TOKEN)")
    return ProfilerClient(url, chosen_token)


@lut_app.command("request")
def request(
    device: Annotated[str, typer.Option("--device", help="Device name, as its agent registered it.")],
    model_format: ModelFormatOption = None,
    space_name: SpaceName = "fbnet",
    resolution: Resolution = 224,
    width: Width = 1.0,
    num_classes: NumClasses = 1000,
    head_channels: HeadChannels = 1984,
    small_input: SmallInput = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Show progress until every entry is measured.")
    ] = False,
    timeout_s: Annotated[
        float, typer.Option("--timeout-s", help="Give up waiting after this long.")
    ] = 3600.0,
    poll_s: Annotated[float, typer.Option("--poll-s", help="Seconds between progress polls.")] = 2.0,
    server: Server = None,
    token: Token = None,
) -> None:
    """Upload the ops the space needs (only those the server lacks, compiled for the device's format: --format,
    default the one the device registered) and queue jobs for the missing entries."""
    space = _space(space_name, resolution, width, num_classes, head_channels, small_input)
    ops = ops_for_space(space)
    try:
        with connect(server, token) as client:
            # Registering the space lets the server report coverage and draw the heat map per space.
            client.put_space(server_space_name(space.params), space_manifest(space))
            report = request_lut(client, device, ops, model_format)
            compiled = f" ({report.compiled} compiled to .{report.model_format})" if report.compiled else ""
            typer.echo(
                f"{device}: {report.needed} entries needed, {len(report.missing)} missing; "
                f"uploaded {len(report.uploaded)} ops{compiled}, queued {report.queued} jobs "
                f"({report.already_queued} already queued)"
            )
            if not wait or not report.missing:
                return
            still_missing = wait_with_progress(client, device, [op.key for op in ops], timeout_s, poll_s)
    except (ProfilerError, FbnetLutError) as exc:
        raise fail(str(exc)) from exc
    if still_missing:
        raise fail(f"timed out; {len(still_missing)} entries still missing: {', '.join(still_missing)}")
    typer.echo(f"{device}: LUT complete for this space")


def wait_with_progress(
    client: ProfilerClient,
    device: str,
    keys: list[str],
    timeout_s: float,
    poll_s: float,
    *,
    stale: Mapping[str, str] | None = None,
) -> list[str]:
    columns = (TextColumn("measuring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task("lut", total=len(keys))

        def show(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return wait_for_entries(client, device, keys, timeout_s, poll_s, on_progress=show, stale=stale)


@lut_app.command("pull")
def pull(
    device: Annotated[str, typer.Option("--device", help="Device name.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the LUT JSON.")],
    server: Server = None,
    token: Token = None,
    cache_dir: CacheDir = None,
) -> None:
    """Fetch the device's LUT (cached with its ETag; the cached copy is used when the server is unreachable)."""
    try:
        with connect(server, token) as client:
            result = pull_lut(client, device, LutCache(cache_dir))
    except (ProfilerError, FbnetLutError) as exc:
        raise fail(str(exc)) from exc
    write_lut_file(output, result.lut.to_json())
    if result.from_cache:
        source = f"the cache (server unreachable: {result.offline_reason})"
    else:
        source = f"{result.lut.server}" + ("" if result.changed else ", unchanged since the last pull")
    typer.echo(
        f"{device}: {len(result.lut.entries)} entries (LUT version {result.lut.lut_version}) from {source}"
    )
    typer.echo(f"wrote {output}")


def register(app: typer.Typer) -> None:
    app.add_typer(lut_app, name="lut")
