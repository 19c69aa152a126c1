"""`dnas search`, `dnas train`, `dnas export`, `dnas show`: the DNAS search and what follows it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from fbnet_core.client import ProfilerError
from fbnet_core.errors import FbnetLutError, InvalidSpaceError, MissingLutEntries
from fbnet_core.formats.architecture_file import ArchitectureFile, load_architecture
from fbnet_core.formats.lut_file import read_lut_file
from fbnet_core.keys import OpSpec, network_spec
from fbnet_core.lut_costs import LutCosts
from fbnet_core.space import SpaceParams, build_space
from search_client.commands.lut_cmds import CacheDir, Server, Token, connect, fail
from search_client.commands.space_options import (
    HeadChannels,
    ModelFormatOption,
    NumClasses,
    Resolution,
    SmallInput,
    SpaceFlags,
    SpaceName,
    Width,
    flag_value,
    resolve_space,
)
from search_client.lut.client import LutCache, pull_lut
from search_client.search.choices import DEFAULT_PATH_GROUPS, LOSS_FORMS, SUPERNET_MODES

# torch, and the modules that import it, load inside the commands that run a network: `dnas --help` and the
# commands that only talk to the server start without them.
if TYPE_CHECKING:
    import torch

    from search_client.search.distributed import DistContext
    from search_client.search.loop import EpochRecord, PhaseStats, ResolvedSchedule, SearchConfig
    from search_client.space.zoo import ZooEntry

DataSpec = Annotated[str, typer.Option("--data", help="digits | fake | cifar10:PATH | imagefolder:PATH")]
TorchDevice = Annotated[str, typer.Option("--torch-device", help="Where to train: cpu, cuda, cuda:1 ...")]
Threads = Annotated[
    int | None, typer.Option("--threads", help="torch CPU threads (default: torch's choice).")
]
Seed = Annotated[int, typer.Option("--seed", help="Seeds data order, initialisation and Gumbel draws.")]


def _lut_costs(
    lut: Path | None, device: str | None, server: str | None, token: str | None, cache: Path | None
) -> LutCosts:
    """The LUT (medians and overheads), from a file or pulled from the server (cached; offline from the cache)."""
    if (lut is None) == (device is None):
        raise fail("give exactly one of --lut PATH and --device NAME")
    if lut is not None:
        return LutCosts.from_body(read_lut_file(lut))
    with connect(server, token) as client:
        result = pull_lut(client, device, LutCache(cache))
    if result.from_cache:
        typer.secho(
            f"server unreachable, using the cached LUT ({result.offline_reason})", err=True, fg="yellow"
        )
    return LutCosts.from_body(result.lut.to_json())


def _compute_device(device: torch.device, context: DistContext) -> torch.device:
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", context.local_rank)
    return device


class SearchProgress:
    """Rich progress bars for the two phases, with loss, accuracy, expected latency and temperature."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.3f} acc {task.fields[acc]:.1%} "),
            TextColumn("lat {task.fields[latency_ms]:.2f} ms tau {task.fields[tau]:.2f}"),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.tasks: dict[str, TaskID] = {}
        self.epoch = 0

    def step(self, phase: str, done: int, total: int, stats: PhaseStats, tau: float) -> None:
        if phase not in self.tasks:
            fields = {"loss": 0.0, "acc": 0.0, "latency_ms": 0.0, "tau": tau}
            self.tasks[phase] = self.progress.add_task(phase, total=total, **fields)
        description = f"epoch {self.epoch + 1}/{self.epochs} {phase:<7}"
        self.progress.update(
            self.tasks[phase],
            description=description,
            completed=done,
            total=total,
            loss=stats.loss,
            acc=stats.accuracy,
            latency_ms=stats.latency_ms,
            tau=tau,
        )

    def epoch_end(self, record: EpochRecord) -> None:
        self.epoch = record.epoch + 1
        self.progress.console.print(
            f"epoch {record.epoch + 1}: supernet val acc {record.val_accuracy:.1%}, "
            f"expected latency {record.expected_latency_ms:.3f} ms, argmax {record.argmax_latency_ms:.3f} ms, "
            f"tau {record.temperature:.2f}" + ("" if record.trained_theta else " (warm-up: weights only)"),
            soft_wrap=True,  # one line per epoch in a log or a pipe too (rich wraps at 80 columns off a terminal)
        )


def search(
    out: Annotated[
        Path, typer.Option("-o", "--out", "--output", help="Output directory (checkpoint, history, architectures).")
    ],
    lut: Annotated[Path | None, typer.Option("--lut", help="A LUT JSON file (dnas lut pull -o).")] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="Pull this device's LUT from the server.")
    ] = None,
    data: DataSpec = "digits",
    space_name: SpaceName = None,
    resolution: Resolution = None,
    width: Width = None,
    num_classes: NumClasses = None,
    head_channels: HeadChannels = None,
    small_input: SmallInput = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Search epochs (the first tenth: weights only).")] = 10,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=2, help="Global batch (all processes).")
    ] = 64,
    mode: Annotated[str, typer.Option("--mode", help=f"{' | '.join(SUPERNET_MODES)}")] = "weighted",
    path_groups: Annotated[
        int,
        typer.Option(
            "--path-groups",
            min=1,
            help="single_path: sample groups per process batch, one path each (clamped to batch / 2).",
        ),
    ] = DEFAULT_PATH_GROUPS,
    latency_loss: Annotated[
        str, typer.Option("--latency-loss", help=f"{' | '.join(LOSS_FORMS)}")
    ] = "multiplicative",
    alpha: Annotated[
        float,
        typer.Option("--alpha", help="Paper's alpha; 0 = cross-entropy alone (latency-unaware baseline)."),
    ] = 0.2,
    beta: Annotated[float, typer.Option("--beta", help="Paper's beta: the exponent of the latency term.")] = 0.6,
    lambda_per_ms: Annotated[float, typer.Option("--lambda-per-ms", help="Additive loss weight.")] = 0.1,
    latency_unit_ms: Annotated[
        float | None,
        typer.Option(
            "--latency-unit-ms",
            help="LAT's unit in the multiplicative loss (ms); default: the LUT's fastest architecture is e^2 units.",
        ),
    ] = None,
    label_smoothing: Annotated[
        float | None,
        typer.Option(
            "--label-smoothing",
            help="Smooth the search's CE (keeps the multiplicative loss's pull alive on easy data); default 0.3.",
        ),
    ] = None,
    target_ms: Annotated[
        float | None,
        typer.Option(
            "--target-ms",
            help="Latency budget (ms): the most accurate architecture whose predicted latency is at most this.",
        ),
    ] = None,
    target_weight: Annotated[
        float, typer.Option("--target-weight", help="Weight of |LAT / target - 1| in the budget's loss.")
    ] = 1.0,
    temperature: Annotated[float, typer.Option("--temperature", help="Initial Gumbel temperature.")] = 5.0,
    temperature_decay: Annotated[
        float | None,
        typer.Option(
            "--temperature-decay",
            help="tau *= exp(-d) per epoch; default: the paper's 5 -> 0.087 over the epochs given.",
        ),
    ] = None,
    theta_lr: Annotated[
        float | None,
        typer.Option(
            "--theta-lr", help="Adam lr for theta; default 0.01, raised where theta gets few steps."
        ),
    ] = None,
    theta_passes: Annotated[
        int | None,
        typer.Option(
            "--theta-passes",
            help="Passes over the theta split per epoch; default: at least 27 steps an epoch.",
        ),
    ] = None,
    paper_schedule: Annotated[
        bool,
        typer.Option(
            "--paper-schedule",
            help="The paper's exact settings: decay 0.045, theta lr 0.01, one pass, plain CE, LAT in ms.",
        ),
    ] = False,
    raw_lut: Annotated[
        bool,
        typer.Option(
            "--raw-lut", help="Predict with raw sums of LUT medians (the runtime's overhead counted per op)."
        ),
    ] = False,
    warmup_fraction: Annotated[float, typer.Option("--warmup-fraction", help="Weights-only epochs.")] = 0.1,
    samples: Annotated[
        int, typer.Option("--samples", min=0, help="Architectures to sample from P_theta.")
    ] = 6,
    max_train_samples: Annotated[
        int | None, typer.Option("--max-train-samples", help="Use at most this many training samples.")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", help="DataLoader workers (file-backed data).")] = 0,
    sync_bn: Annotated[
        bool,
        typer.Option(
            "--sync-bn",
            help="SyncBatchNorm: statistics over the global batch (torchrun on CUDA, weighted mode).",
        ),
    ] = False,
    seed: Seed = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT/checkpoint.pt.")] = False,
    torch_device: TorchDevice = "cpu",
    threads: Threads = None,
    server: Server = None,
    token: Token = None,
    cache_dir: CacheDir = None,
) -> None:
    """Search an architecture for a device (FBNet DNAS). Run under torchrun for several processes."""
    import torch

    from search_client.search.distributed import init_from_environment
    from search_client.search.loop import ARGMAX_NAME, TARGET_NAME, SearchConfig, run_search
    from search_client.search.loss import LossConfig
    from search_client.search.torch_device import usable_torch_device

    if mode not in SUPERNET_MODES:
        raise fail(f"--mode: expected one of {', '.join(SUPERNET_MODES)}, got {mode!r}")
    if threads:
        torch.set_num_threads(threads)
    flags = SpaceFlags(resolution, width, num_classes, head_channels, small_input)
    try:
        params = resolve_space(flags, space_name, lambda: connect(server, token))
        requested_device = usable_torch_device(torch_device)
        # Inside the try: SearchConfig refuses an impossible schedule with a typed error.
        config = SearchConfig(
            data=data,
            resolution=params.resolution,
            width=params.width,
            head_channels=params.head_channels,
            small_input=params.small_input,
            # The data set decides the classes; a class count given (or named by --space) is checked against it.
            num_classes=params.num_classes if num_classes is not None or space_name else None,
            epochs=epochs,
            batch_size=batch_size,
            mode=mode,  # type: ignore[arg-type]  # checked above
            path_groups=path_groups,
            seed=seed,
            loss=LossConfig(
                latency_loss,  # type: ignore[arg-type]  # LossConfig refuses an unknown form
                alpha,
                beta,
                lambda_per_ms,
                latency_unit_ms,
                label_smoothing,
                target_ms,
                target_weight,
            ),
            initial_temperature=temperature,
            temperature_decay=temperature_decay,
            theta_lr=theta_lr,
            theta_passes=theta_passes,
            paper_schedule=paper_schedule,
            lut_overhead_once=not raw_lut,
            warmup_fraction=warmup_fraction,
            max_train_samples=max_train_samples,
            workers=workers,
            sync_bn=sync_bn,
        )
        costs = _lut_costs(lut, device, server, token, cache_dir)
        context = init_from_environment(requested_device)
        compute_device = _compute_device(requested_device, context)
        display = SearchProgress(epochs) if context.is_main else None
        if display is not None:
            display.progress.start()
        try:
            result = run_search(
                config,
                costs,
                out,
                resume=resume,
                context=context,
                on_step=display.step if display else None,
                on_epoch_end=display.epoch_end if display else None,
                device=compute_device,
                sample_count=samples,
            )
        finally:
            if display is not None:
                display.progress.stop()
    except MissingLutEntries as exc:
        raise fail(_lut_hint(exc, device)) from exc
    except (ProfilerError, FbnetLutError) as exc:
        raise fail(str(exc)) from exc
    if context.is_main:
        typer.echo(describe_schedule(config, result.schedule))
        typer.echo(result.costs.summary_line())
        argmax = load_architecture(out / ARGMAX_NAME)
        typer.echo(f"argmax architecture: {argmax.arch}")
        typer.echo(f"predicted latency: {argmax.predicted_latency_ms:.3f} ms")
        if target_ms is not None:
            chosen = load_architecture(out / TARGET_NAME)
            assert chosen.budget is not None  # written with the budget it was chosen for
            typer.echo(f"within the budget: {chosen.arch}")
            typer.echo(
                f"predicted latency: {chosen.predicted_latency_ms:.3f} ms, target {target_ms:g} ms "
                f"({chosen.budget['landed_pct']:+.1f} %); train it with --arch {out / TARGET_NAME}"
            )
        typer.echo(
            f"wrote {', '.join(str(path) for path in result.outputs[:2])} ... ({len(result.outputs)} files)"
        )


def _lut_hint(exc: MissingLutEntries, device: str | None) -> str:
    """The missing entries' one line, with what to do about them."""
    request = f"`dnas lut request --device {device or 'NAME'}` with this search's space options"
    return f"{exc}: request this space's LUT with {request}"


def describe_schedule(config: SearchConfig, schedule: ResolvedSchedule) -> str:
    """One line: what this search ran with, its defaults filled in."""
    loss = schedule.loss
    unit = (
        f", LAT unit {loss.latency_unit_ms:.4g} ms"
        if loss.form == "multiplicative" and loss.latency_aware
        else ""
    )
    return (
        f"settings: tau {config.initial_temperature:g} -> {schedule.final_temperature:.3f} over {config.epochs} "
        f"epochs, theta {schedule.theta_steps} steps ({schedule.theta_passes} pass(es) of its split an epoch) at "
        f"lr {schedule.theta_lr:.3g}, label smoothing {loss.label_smoothing:g}{unit}"
    )


def _space_given(flags: SpaceFlags, name: str | None, server: str | None, token: str | None) -> SpaceParams | None:
    """The space that --space or the space options ask for; None when neither is given."""
    if name is None and not flags.given():
        return None
    return resolve_space(flags, name, lambda: connect(server, token))


def _arch_space(
    loaded: ArchitectureFile, flags: SpaceFlags, name: str | None, server: str | None, token: str | None, arch: Path
) -> SpaceParams:
    """The space an architecture file is built in. A file that names its space carries it, and space options given
    too must agree with it (every field of a named space, the fields given as flags; one line says which field
    differs). A file without one (a hand-written list of blocks) takes the options' space."""
    wanted = _space_given(flags, name, server, token)
    if wanted is None:
        return loaded.params
    if not loaded.space_given:
        return wanted
    checked = SpaceParams.__dataclass_fields__ if name is not None else flags.given()
    for field_name in checked:
        searched, given = getattr(loaded.params, field_name), getattr(wanted, field_name)
        if searched != given:
            source = f"--space {name}" if name else "the options"
            raise InvalidSpaceError(
                f"{arch} was searched for {field_name}={searched}, {source} say {field_name}={given}: "
                f"pass {flag_value(field_name, searched)} or give the matching --arch"
            )
    return loaded.params


def train(
    arch: Annotated[Path, typer.Option("--arch", help="Architecture JSON (from dnas search).")],
    data: DataSpec = "digits",
    space_name: SpaceName = None,
    resolution: Resolution = None,
    width: Width = None,
    num_classes: NumClasses = None,
    head_channels: HeadChannels = None,
    small_input: SmallInput = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Training epochs.")] = 10,
    batch_size: Annotated[int, typer.Option("--batch-size", min=2, help="Samples per SGD step.")] = 64,
    lr: Annotated[float, typer.Option("--lr", help="Initial SGD learning rate (cosine decay).")] = 0.1,
    seed: Seed = 0,
    workers: Annotated[int, typer.Option("--workers", help="DataLoader workers (file-backed data).")] = 0,
    out: Annotated[
        Path | None, typer.Option("-o", "--out", "--output", help="Write train_result.json and model.pt here.")
    ] = None,
    torch_device: TorchDevice = "cpu",
    threads: Threads = None,
    server: Server = None,
    token: Token = None,
) -> None:
    """Train an architecture from scratch and report its top-1 on the validation split."""
    import torch

    from search_client.search.torch_device import usable_torch_device
    from search_client.search.train import TrainConfig, TrainEpoch, train_architecture

    if threads:
        torch.set_num_threads(threads)
    config = TrainConfig(data=data, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, workers=workers)

    def show(record: TrainEpoch) -> None:
        typer.echo(
            f"epoch {record.epoch + 1}/{epochs}: loss {record.train_loss:.3f}, "
            f"train acc {record.train_accuracy:.1%}, val top-1 {record.val_accuracy:.1%}"
        )

    flags = SpaceFlags(resolution, width, num_classes, head_channels, small_input)
    try:
        compute_device = usable_torch_device(torch_device)
        loaded = load_architecture(arch)
        params = _arch_space(loaded, flags, space_name, server, token, arch)
        result = train_architecture(loaded.arch, params, config, compute_device, on_epoch_end=show)
    except (ProfilerError, FbnetLutError) as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"top-1: {result.top1:.2%}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_result.json").write_text(json.dumps(result.to_json(), indent=2))
        torch.save(result.model.state_dict(), out / "model.pt")
        typer.echo(f"wrote {out / 'train_result.json'}, {out / 'model.pt'}")


def export(
    output: Annotated[
        Path,
        typer.Option("-o", "--out", "--output", help="File to write (.onnx, or .pte / .tflite with --format)."),
    ],
    arch: Annotated[Path | None, typer.Option("--arch", help="Architecture JSON.")] = None,
    model_name: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="A zoo model instead (fbnet_a, ..., mobilenetv2_100), e.g. as the "
            "agent's --speed-reference.",
        ),
    ] = None,
    weights: Annotated[Path | None, typer.Option("--weights", help="model.pt from dnas train --out.")] = None,
    space_name: SpaceName = None,
    resolution: Resolution = None,
    width: Width = None,
    num_classes: NumClasses = None,
    head_channels: HeadChannels = None,
    small_input: SmallInput = None,
    server: Server = None,
    token: Token = None,
    model_format: ModelFormatOption = None,
) -> None:
    """Export an architecture (freshly initialised, or with trained weights) to ONNX, batch 1, eval mode; or, with
    --format pte / tflite, compiled for ExecuTorch / LiteRT from the same module and weights."""
    import torch

    from search_client.space.compile import compile_modules, compile_op
    from search_client.space.model import build_model
    from search_client.space.zoo import get_model

    fmt = model_format or "onnx"
    if (arch is None) == (model_name is None):
        raise fail("give exactly one of --arch and --model")
    flags = SpaceFlags(resolution, width, num_classes, head_channels, small_input)
    try:
        if model_name is not None:
            if weights is not None:
                raise fail("--weights goes with --arch (a zoo model is exported freshly initialised)")
            spec = _zoo_spec(get_model(model_name), flags, space_name, server, token)
            output.write_bytes(compile_op(spec, fmt))
            input_shape = list(spec["input_shape"])
        else:
            assert arch is not None  # exactly one of the two, checked above
            loaded = load_architecture(arch)
            space = build_space(_arch_space(loaded, flags, space_name, server, token, arch))
            model = build_model(loaded.arch, space)
            if weights is not None:
                model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            output.write_bytes(compile_modules([(model.eval(), space.input_shape)], fmt)[0])
            input_shape = list(space.input_shape)
    except typer.Exit:
        raise  # already reported (click's Exit is a RuntimeError)
    except (ProfilerError, FbnetLutError, OSError, RuntimeError) as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"wrote {output} ({output.stat().st_size:,} bytes, input {input_shape})")


def _zoo_spec(
    entry: ZooEntry, flags: SpaceFlags, name: str | None, server: str | None, token: str | None
) -> OpSpec:
    """A zoo model as an op: in its own space, or - with space options - an FBNet model's blocks in the space
    they give (e.g. a speed reference as small as the ops an agent measures at 16 px)."""
    from search_client.space.zoo import FBNetEntry

    wanted = _space_given(flags, name, server, token)
    if wanted is None:
        return entry.spec()
    if not isinstance(entry, FBNetEntry):
        raise InvalidSpaceError(
            f"{entry.name} is not built from the FBNet space's blocks: space options go with an FBNet zoo model "
            "(fbnet_a, ...) or --arch"
        )
    return network_spec(entry.arch, wanted)


def show(
    search_dir: Annotated[Path, typer.Argument(help="A dnas search --out directory.")],
    plot: Annotated[
        Path | None, typer.Option("--plot", help="PNG path; default: theta_probabilities.png in DIR.")
    ] = None,
) -> None:
    """The searched architecture as a table (per layer: argmax block and its probability) and a PNG."""
    from search_client.validation.plots import PLOT_NAME, plot_probabilities, read_history

    try:
        history = read_history(search_dir)
    except FbnetLutError as exc:
        raise fail(str(exc)) from exc
    final = history.final
    table = Table(title=f"{search_dir}: after epoch {history.epochs[-1] + 1}")
    table.add_column("layer", justify="right")
    table.add_column("argmax block")
    table.add_column("P", justify="right")
    table.add_column("runner-up")
    for layer, probabilities in enumerate(final):
        ranked = probabilities.argsort(descending=True).tolist()
        best, second = ranked[0], ranked[1]
        table.add_row(
            str(layer + 1),
            history.candidates[best],
            f"{probabilities[best]:.2f}",
            f"{history.candidates[second]} {probabilities[second]:.2f}",
        )
    console = Console()
    console.print(table)
    console.print(
        f"argmax predicted latency {history.argmax_latency_ms[-1]:.3f} ms, "
        f"supernet val acc {history.val_accuracy[-1]:.1%}, tau {history.temperatures[-1]:.2f}"
    )
    path = plot_probabilities(history, plot or search_dir / PLOT_NAME)
    console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("search")(search)
    app.command("train")(train)
    app.command("export")(export)
    app.command("show")(show)
