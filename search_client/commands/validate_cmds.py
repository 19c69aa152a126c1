"""`dnas validate` (whole networks on a device vs the LUT's sum) and `dnas plot tradeoff|arch` (client figures)."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from fbnet_core.client import ProfilerError
from fbnet_core.errors import FbnetLutError
from fbnet_core.fidelity import FidelitySummary
from fbnet_core.formats.architecture_file import load_architecture
from fbnet_core.formats.validation_file import VALIDATION_FILE_NAME, write_validation_file
from fbnet_core.space import SpaceParams
from fbnet_core.space_manifest import space_name as server_space_name
from search_client.commands.lut_cmds import Server, Token, connect, fail, wait_with_progress
from search_client.commands.space_options import (
    HeadChannels,
    NumClasses,
    Resolution,
    SmallInput,
    SpaceFlags,
    SpaceName,
    Width,
    resolve_space,
)
from search_client.validation.calibration import DEFAULT_FIT_FRACTION, HOLDOUT, split_names

# The measuring and plotting modules import torch and matplotlib; they load inside the commands that use them.
if TYPE_CHECKING:
    from search_client.validation.calibration_choice import CalibrationChoice
    from search_client.validation.validate import ValidationPoint, ValidationReport

SCATTER_NAME = "scatter.png"


def _summary_line(title: str, summary: FidelitySummary) -> str:
    tau = "n/a" if summary.kendall_tau is None else f"{summary.kendall_tau:.3f}"
    return (
        f"{title} ({summary.count} networks): MAPE {summary.mape_pct:.2f} %, "
        f"within 5 % {summary.within_5_pct:.0f} %, within 10 % {summary.within_10_pct:.0f} %, "
        f"Kendall tau {tau}, mean signed error {summary.mean_signed_error_pct:+.2f} %"
    )


def _print_points(console: Console, points: list[ValidationPoint]) -> None:
    table = Table("network", "kind", "split", "predicted ms", "measured ms", "error %")
    for point in points:
        if point.predicted_us is None:
            predicted = error = "-"
        else:
            predicted = f"{point.predicted_us / 1000:.3f}"
            error = f"{100 * (point.predicted_us - point.measured_us) / point.measured_us:+.1f}"
        table.add_row(
            point.name, point.kind, point.split or "-", predicted, f"{point.measured_us / 1000:.3f}", error
        )
    console.print(table)


def _calibration_line(choice: CalibrationChoice) -> str:
    fitted = choice.calibration.to_json()
    if fitted["kind"] == "linear":
        formula = f"measured = {fitted['scale']:.4f} x predicted {fitted['offset_us']:+.1f} us"
    else:
        scales = " + ".join(f"{scale:.3f} x {kind}" for kind, scale in fitted["scales"].items())
        formula = f"measured = fixed ops + {scales} {fitted['offset_us']:+.1f} us"
    loo = ", ".join(f"{name} {value:.2f} %" for name, value in choice.loo_mape_pct.items())
    chosen_by = f" (leave-one-out MAPE on the fit networks: {loo})" if loo else ""
    return f"calibration fitted on {choice.calibration.fit_count} random networks: {formula}{chosen_by}"


def _announce_round(rounds: int) -> Callable[[int], None]:
    def announce(round_number: int) -> None:
        typer.echo(f"round {round_number} of {rounds}: measuring the whole networks again", err=True)

    return announce


def _rounds_line(rounds: int, spread_pct: list[float]) -> str:
    return (
        f"whole networks measured in {rounds} rounds, each taken as the median of its rounds: spread between "
        f"rounds (slowest - fastest) / median {statistics.median(spread_pct):.2f} % for the median network, "
        f"{max(spread_pct):.2f} % at most"
    )


def _print_report(report: ValidationReport) -> None:
    typer.echo(_summary_line("LUT prediction, all", report.raw))
    for kind, summary in report.raw_by_kind.items():
        typer.echo(_summary_line(f"LUT prediction, {kind}", summary))
    if report.plain_sum is not None:
        typer.echo(_summary_line("raw sum of medians (overhead counted per op), all", report.plain_sum))
        for kind, summary in report.plain_sum_by_kind.items():
            typer.echo(_summary_line(f"raw sum of medians, {kind}", summary))
    if report.calibration is None or report.raw_holdout is None or report.calibrated_holdout is None:
        return
    typer.echo(_calibration_line(report.calibration))
    typer.echo(_summary_line("LUT prediction, held out", report.raw_holdout))
    typer.echo(_summary_line("calibrated, held out", report.calibrated_holdout))


def validation_document(
    device: str,
    label: str,
    space: str,
    params: SpaceParams,
    seed: int,
    rounds: int,
    points: list[ValidationPoint],
    report: ValidationReport,
) -> dict[str, Any]:
    """validation.json: the run's settings, every point and the figures (a superset of the server's body)."""
    from search_client.validation.validate import LATENCY_FIELD

    return {
        "device": device,
        "space": space,
        "space_params": dataclasses.asdict(params),
        "label": label,
        "resolution": params.resolution,
        "seed": seed,
        "rounds": rounds,
        "statistic": LATENCY_FIELD,
        "points": [point.to_json() for point in points],
        "summary": report.to_json(),
    }


def validate(
    device: Annotated[str, typer.Option("--device", help="Device name, as its agent registered it.")],
    n: Annotated[int, typer.Option("--n", min=0, help="Random architectures besides the zoo.")] = 30,
    space_name: SpaceName = None,
    resolution: Resolution = None,
    width: Width = None,
    num_classes: NumClasses = None,
    head_channels: HeadChannels = None,
    small_input: SmallInput = None,
    skewed: Annotated[
        int,
        typer.Option(
            "--skewed", min=0, help="Networks skewed toward cheap blocks, and as many toward expensive ones."
        ),
    ] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random architectures and the split.")] = 0,
    rounds: Annotated[
        int,
        typer.Option(
            "--rounds",
            min=1,
            help="Measure the whole networks this many times, round after round; use medians.",
        ),
    ] = 1,
    calibrate: Annotated[
        bool, typer.Option("--calibrate", help="Fit a linear calibration on half the random networks.")
    ] = False,
    fit_fraction: Annotated[
        float, typer.Option("--fit-fraction", help="Share of random networks the calibration is fitted on.")
    ] = DEFAULT_FIT_FRACTION,
    out: Annotated[
        Path, typer.Option("-o", "--out", "--output", help="Folder for validation.json and scatter.png.")
    ] = Path("validation"),
    label: Annotated[str | None, typer.Option("--label", help="Name of this run (default: derived).")] = None,
    timeout_s: Annotated[float, typer.Option("--timeout-s", help="Give up waiting for the agent.")] = 3600.0,
    poll_s: Annotated[float, typer.Option("--poll-s", help="Seconds between progress polls.")] = 2.0,
    post: Annotated[
        bool, typer.Option("--post/--no-post", help="Store the run on the server (shown on its dashboard).")
    ] = True,
    server: Server = None,
    token: Token = None,
) -> None:
    """Measure FBNet-A/B/C, MobileNetV2 and N random architectures whole on the device; print MAPE, share within
    +-5/10 %, Kendall tau of the LUT's sum (and of a calibration on held-out networks); write JSON and a plot.
    The zoo networks are ImageNet networks: they are measured for ImageNet stride schedules only."""
    from search_client.validation.fidelity_plot import plot_validation_scatter
    from search_client.validation.validate import (
        build_report,
        calibrated_us,
        calibration_json,
        measure_and_compare,
        post_run,
        round_spread_pct,
        validation_models,
        with_splits,
    )

    flags = SpaceFlags(resolution, width, num_classes, head_channels, small_input)
    try:
        params = resolve_space(flags, space_name, lambda: connect(server, token))
    except (ProfilerError, FbnetLutError) as exc:
        raise fail(str(exc)) from exc
    space = space_name or server_space_name(params)
    run_label = label or f"{space}-n{n}-seed{seed}" + (f"-rounds{rounds}" if rounds > 1 else "")
    try:
        models = validation_models(n, seed, params=params, skewed=skewed)
        if calibrate:  # refuse a split that cannot work before minutes of measuring, not after
            split_names([model.name for model in models if model.kind == "random"], fit_fraction, seed)
        with connect(server, token) as client:
            typer.echo(
                f"{device}: exporting and uploading {len(models)} networks and their blocks (once each)"
            )
            points = measure_and_compare(
                client, device, models, timeout_s, poll_s, wait_with_progress, rounds, _announce_round(rounds),
                on_costs=lambda costs: typer.echo(costs.summary_line()),
            )  # fmt: skip
            if calibrate:
                points = with_splits(points, fit_fraction, seed)
            report = build_report(points, calibrate)
            stored = (
                post_run(client, device, params, run_label, points, calibration_json(report), space)
                if post
                else None
            )
    except (ProfilerError, FbnetLutError) as exc:
        raise fail(str(exc)) from exc
    _print_points(Console(), points)
    if rounds > 1:
        typer.echo(_rounds_line(rounds, round_spread_pct(points)))
    _print_report(report)
    if stored is not None:
        typer.echo(
            f"stored on the server as validation run {stored['id']} of {device} (space {stored['space']})"
        )
    document = validation_document(device, run_label, space, params, seed, rounds, points, report)
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_validation_file(out / VALIDATION_FILE_NAME, document)
        title = f"{device}: LUT sum vs whole network, space {space}, {report.raw.count} networks"
        held_out = [p for p in points if p.split == HOLDOUT and p.predicted_us is not None]
        calibrated = calibrated_us(report.calibration, held_out) if report.calibration else None
        plot_validation_scatter(points, out / SCATTER_NAME, title, calibrated)
    except OSError as exc:
        raise fail(f"--out: cannot write to {out}: {exc}") from exc
    typer.echo(f"wrote {out / VALIDATION_FILE_NAME} and {out / SCATTER_NAME}")


plot_app = typer.Typer(
    rich_markup_mode=None,
    no_args_is_help=True, help="Figures: accuracy vs latency per device, an architecture as blocks."
)


@plot_app.command("tradeoff")
def plot_tradeoff_command(
    points: Annotated[
        Path, typer.Option("--points", help="JSON list of trade-off points (bench_rq5 writes one).")
    ],
    output: Annotated[Path, typer.Option("-o", "--out", "--output", help="PNG to write.")],
    title: Annotated[str, typer.Option("--title", help="Figure title.")] = "accuracy vs measured latency",
) -> None:
    """Top-1 against measured latency, one panel per device, zoo and searched networks (the paper's Fig. 1)."""
    from search_client.validation.tradeoff import plot_tradeoff, read_points

    try:
        plot_tradeoff(read_points(points), output, title)
    except FbnetLutError as exc:
        raise fail(str(exc)) from exc
    except OSError as exc:
        raise fail(f"-o: cannot write {output}: {exc}") from exc
    typer.echo(f"wrote {output}")


@plot_app.command("arch")
def plot_arch_command(
    arch: Annotated[
        Path, typer.Option("--arch", help="Architecture JSON (dnas search writes arch_argmax.json).")
    ],
    output: Annotated[Path, typer.Option("-o", "--out", "--output", help="PNG to write.")],
    title: Annotated[str | None, typer.Option("--title", help="Default: the file name.")] = None,
) -> None:
    """The architecture drawn as blocks, layer 1 to 22."""
    from search_client.validation.tradeoff import plot_architecture

    try:
        plot_architecture(load_architecture(arch).arch, output, title or arch.name)
    except FbnetLutError as exc:
        raise fail(str(exc)) from exc
    except OSError as exc:
        raise fail(f"-o: cannot write {output}: {exc}") from exc
    typer.echo(f"wrote {output}")


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
    app.add_typer(plot_app, name="plot")
