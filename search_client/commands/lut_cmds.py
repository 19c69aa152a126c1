"""`dnas lut request` and `dnas lut pull`: fill a device's LUT for a search space, and fetch it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer

from fbnet_core.client import ProfilerClient, ProfilerError
from fbnet_core.dev_tokens import read_dev_tokens
from fbnet_core.errors import FbnetLutError
from fbnet_core.formats.lut_file import write_lut_file
from fbnet_core.network_fit import FIT_NETWORKS, lut_ops
from fbnet_core.space import SpaceParams, build_space
from fbnet_core.space_manifest import space_manifest
from fbnet_core.space_manifest import space_name as server_space_name
from search_client.commands.space_options import (
    HeadChannels,
    ModelFormatOption,
    NumClasses,
    Resolution,
    SmallInput,
    SpaceFlags,
    Width,
    fetch_space,
)
from search_client.commands.wait_display import WaitDisplay
from search_client.lut.agent_watch import DEFAULT_SILENCE_S, AgentWatch
from search_client.lut.client import LutCache, pull_lut, registered_device, request_lut, wait_for_entries

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

lut_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Request and pull a device's latency LUT.")


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
    client = ProfilerClient(url, chosen_token)
    if chosen_token is None:
        # A mistyped --server has no dev tokens either: say that it cannot be reached, not that a token is missing.
        with client:
            client.healthz()
        raise fail(f"--token: no admin token for {url} (set PROFILER_ADMIN_TOKEN)")
    return client


@lut_app.command("request")
def request(
    device: Annotated[str, typer.Option("--device", help="Device name, as its agent registered it.")],
    model_format: ModelFormatOption = None,
    space_name: Annotated[
        str | None,
        typer.Option(
            "--space",
            help="Register the space under this name (default: derived from its parameters); an existing name "
            "given without space flags is requested as registered.",
        ),
    ] = None,
    resolution: Resolution = None,
    width: Width = None,
    num_classes: NumClasses = None,
    head_channels: HeadChannels = None,
    small_input: SmallInput = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Show progress until every entry is measured.")
    ] = False,
    timeout_s: Annotated[
        float, typer.Option("--timeout-s", help="Give up waiting after this long.")
    ] = 3600.0,
    poll_s: Annotated[float, typer.Option("--poll-s", help="Seconds between progress polls.")] = 2.0,
    silence_s: Annotated[
        float,
        typer.Option("--agent-silence-s", min=1.0, help="Say so when no agent has polled for the device this long."),
    ] = DEFAULT_SILENCE_S,
    server: Server = None,
    token: Token = None,
) -> None:
    """Register the space on the server, upload the ops it needs (only those the server lacks, compiled for the device's
    format: --format, default the one the device registered) and queue jobs for the missing entries."""
    flags = SpaceFlags(resolution, width, num_classes, head_channels, small_input)
    try:
        given = flags.params()  # an impossible value is one line before any server is asked
        with connect(server, token) as client:
            params = _requested_params(client, flags, given, space_name)
            space = build_space(params)
            ops = lut_ops(space)
            name = space_name or server_space_name(params)
            # The space travels by name: `dnas search|validate|train|export --space NAME` read it back.
            client.put_space(name, space_manifest(space))
            if wait:  # an agent started a moment ago may not have registered the device yet

                def say_waiting() -> None:
                    typer.echo(
                        f"{device}: not registered yet; waiting for its agent (start one with: device-agent run "
                        f"--server {client.base_url} --device {device})",
                        err=True,
                    )

                registered_device(client, device, timeout_s, min(poll_s, 0.5), on_wait=say_waiting)
            report = request_lut(client, device, ops, model_format)
            compiled = f" ({report.compiled} compiled to .{report.model_format})" if report.compiled else ""
            typer.echo(
                f"{device}: space {name}: {report.needed} entries needed ({len(ops) - FIT_NETWORKS} ops and "
                f"{FIT_NETWORKS} whole networks that fit how the ops add up), "
                f"{len(report.missing)} missing; "
                f"uploaded {len(report.uploaded)} ops{compiled}, queued {report.queued} jobs "
                f"({report.already_queued} already queued)"
            )
            if not wait or not report.missing:
                return
            still_missing = wait_with_progress(
                client, device, [op.key for op in ops], timeout_s, poll_s, silence_s=silence_s
            )
    except (ProfilerError, FbnetLutError) as exc:
        raise fail(str(exc)) from exc
    if still_missing:
        raise fail(f"timed out; {len(still_missing)} entries still missing: {', '.join(still_missing)}")
    typer.echo(f"{device}: LUT complete for space {name}")


def _requested_params(
    client: ProfilerClient, flags: SpaceFlags, given: SpaceParams, name: str | None
) -> SpaceParams:
    """The flags' space (`given`); with `--space NAME` and no flags, the space registered under that name (if any)."""
    if name is not None and not flags.given():
        registered = fetch_space(client, name)
        if registered is not None:
            return registered
    return given


def wait_with_progress(
    client: ProfilerClient,
    device: str,
    keys: list[str],
    timeout_s: float,
    poll_s: float,
    *,
    stale: Mapping[str, str] | None = None,
    silence_s: float = DEFAULT_SILENCE_S,
) -> list[str]:
    """Wait for the entries, showing progress, and saying when no agent has polled for the device lately."""
    watch = AgentWatch(client, device, silence_s)
    with WaitDisplay() as display:

        def show(done: int, total: int) -> None:
            display.update(done, total)
            silent_s = watch.silent_for_s(done)
            if silent_s is not None:
                display.note(
                    f"no agent has polled for device {device} in the last {silent_s:.0f} s; start one with: "
                    f"device-agent run --server {client.base_url} --device {device}"
                )

        return wait_for_entries(client, device, keys, timeout_s, poll_s, on_progress=show, stale=stale)


@lut_app.command("pull")
def pull(
    device: Annotated[str, typer.Option("--device", help="Device name.")],
    output: Annotated[Path, typer.Option("-o", "--out", "--output", help="Where to write the LUT JSON.")],
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
    output.parent.mkdir(parents=True, exist_ok=True)
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
