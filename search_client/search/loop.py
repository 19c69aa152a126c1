"""The DNAS search loop (FBNet section 3.3): weights and theta trained in alternation on disjoint data.

Per epoch: the weights on the 80% split (SGD, cosine), then - after the warm-up epochs - theta on the other 20%
(Adam). Both phases use the same loss, CE combined with the expected latency of the same Gumbel draw.
Every epoch reseeds all random generators from (seed, epoch, phase, rank) and ends with a checkpoint, so a run
resumed from its checkpoint replays exactly what an uninterrupted run would have done.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from fbnet_core.arch import Architecture
from fbnet_core.blocks import CANDIDATES
from fbnet_core.formats.architecture_file import save_architecture
from fbnet_core.lut_costs import LutCosts, as_lut_costs
from fbnet_core.network_fit import fit_network_costs
from fbnet_core.predict import predict_latency_us
from fbnet_core.space import SearchSpace, SpaceParams, fbnet_space, space_params
from search_client.errors import CheckpointError, InvalidSearchConfigError
from search_client.lut.latency import US_PER_MS, LatencyTable, latency_table_for_space
from search_client.search.budget import BudgetChoice, check_target, most_probable_within
from search_client.search.data import global_batches, iterate_batches, load_data
from search_client.search.distributed import DistContext, global_sum, shard_batch
from search_client.search.gumbel import sample_gumbel_noise
from search_client.search.loss import LossConfig, cross_entropy, search_loss
from search_client.search.schedule import (
    PAPER_TEMPERATURE_DECAY,
    PAPER_THETA_LR,
    fitted_temperature_decay,
    split_for_search,
    temperature,
    theta_learning_rate,
    theta_passes_per_epoch,
    warmup_epochs,
)
from search_client.search.supernet import DEFAULT_PATH_GROUPS, Supernet, SupernetMode
from search_client.search.torch_device import activation_layout

CHECKPOINT_NAME = "checkpoint.pt"
HISTORY_NAME = "theta_history.json"
SUMMARY_NAME = "search_summary.json"
# What a field missing from an older checkpoint's configuration meant when that checkpoint was written.
LEGACY_DEFAULTS: dict[str, Any] = {"theta_passes": 1, "paper_schedule": False, "lut_overhead_once": False}
LEGACY_LOSS_DEFAULTS: dict[str, Any] = {"label_smoothing": 0.0, "target_ms": None, "target_weight": 1.0}


@dataclass(frozen=True)
class SearchConfig:
    """Everything that determines a search; stored in its checkpoint so a resume can check it is the same run."""

    data: str = "digits"
    # The space's fields take SpaceParams' defaults; small_input None = the space's rule for this resolution.
    resolution: int = SpaceParams.resolution
    width: float = SpaceParams.width
    head_channels: int = SpaceParams.head_channels
    small_input: bool | None = None
    num_classes: int | None = None  # None: the data set's; given, the data set must have as many
    epochs: int = 10
    batch_size: int = 64
    mode: SupernetMode = "weighted"
    path_groups: int = DEFAULT_PATH_GROUPS
    seed: int = 0
    loss: LossConfig = field(default_factory=LossConfig)
    initial_temperature: float = 5.0
    temperature_decay: float | None = None  # None: the paper's 5 -> 0.087 over these epochs (schedule.py)
    warmup_fraction: float = 0.1
    weight_fraction: float = 0.8
    weight_lr: float = 0.1
    weight_momentum: float = 0.9
    weight_decay: float = 1e-4
    theta_lr: float | None = None  # None: 0.01, raised on a small data set (schedule.theta_learning_rate)
    theta_passes: int | None = None  # None: enough passes over the theta split for MIN_THETA_STEPS_PER_EPOCH
    theta_weight_decay: float = 5e-4
    paper_schedule: bool = False  # the paper's exact settings (decay 0.045, theta lr 0.01, one pass, CE, ms)
    lut_overhead_once: bool = (
        True  # count the runtime's per-invocation overhead once per network (lut_costs.py)
    )
    max_train_samples: int | None = None
    workers: int = 0
    sync_bn: bool = False

    def __post_init__(self) -> None:
        if self.small_input is None:
            object.__setattr__(self, "small_input", space_params(self.resolution).small_input)
        # Refused here rather than left to surface mid-search: tau 0 divides by zero in the Gumbel softmax, a
        # negative decay heats the search up, and a warm-up or split fraction outside (0, 1) leaves theta or the
        # weights nothing to train on.
        # The space's own fields, checked before any data is loaded (its classes come with the data set).
        SpaceParams(
            self.resolution, self.width, head_channels=self.head_channels, small_input=self.small_input
        )
        if self.initial_temperature <= 0.0:
            raise InvalidSearchConfigError(f"--temperature must be > 0, got {self.initial_temperature}")
        if self.temperature_decay is not None and self.temperature_decay < 0.0:
            raise InvalidSearchConfigError(f"--temperature-decay must be >= 0, got {self.temperature_decay}")
        if self.theta_lr is not None and not self.theta_lr > 0.0:
            raise InvalidSearchConfigError(f"--theta-lr must be > 0, got {self.theta_lr}")
        if self.theta_passes is not None and self.theta_passes < 1:
            raise InvalidSearchConfigError(f"--theta-passes must be >= 1, got {self.theta_passes}")
        if self.paper_schedule:
            given = [
                flag
                for flag, value in (
                    ("--temperature-decay", self.temperature_decay),
                    ("--theta-lr", self.theta_lr),
                    ("--theta-passes", self.theta_passes),
                    ("--label-smoothing", self.loss.label_smoothing),
                    ("--latency-unit-ms", self.loss.latency_unit_ms),
                )
                if value is not None
            ]
            if given:
                raise InvalidSearchConfigError(
                    f"--paper-schedule sets {', '.join(given)} to the paper's values: give one or the other"
                )
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise InvalidSearchConfigError(f"--warmup-fraction must be in [0, 1), got {self.warmup_fraction}")
        if not 0.0 < self.weight_fraction < 1.0:
            raise InvalidSearchConfigError(
                f"the weight split fraction must be in (0, 1), got {self.weight_fraction}"
            )

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> SearchConfig:
        return cls(**{**payload, "loss": LossConfig(**payload["loss"])})

    def schedule(self, theta_batches_per_pass: int, fastest_ms: float) -> ResolvedSchedule:
        """The settings this search runs with, its defaults filled in for this data set and LUT."""
        theta_epochs = self.epochs - warmup_epochs(self.epochs, self.warmup_fraction)
        if self.paper_schedule:
            decay, passes, lr = PAPER_TEMPERATURE_DECAY, 1, PAPER_THETA_LR
        else:
            decay = self.temperature_decay
            if decay is None:
                decay = fitted_temperature_decay(self.epochs, self.initial_temperature)
            passes = self.theta_passes or theta_passes_per_epoch(theta_batches_per_pass)
            lr = self.theta_lr or theta_learning_rate(theta_epochs * passes * theta_batches_per_pass)
        return ResolvedSchedule(
            temperature_decay=decay,
            final_temperature=temperature(self.epochs - 1, self.initial_temperature, decay),
            theta_lr=lr,
            theta_passes=passes,
            theta_steps=theta_epochs * passes * theta_batches_per_pass,
            loss=self.loss.resolved(fastest_ms, paper=self.paper_schedule),
        )

    def space(self, num_classes: int) -> SearchSpace:
        return fbnet_space(self.resolution, self.width, num_classes, self.head_channels, self.small_input)

    def check_classes(self, data_num_classes: int) -> None:
        """A class count given with the space must be the data set's: the classifier is sized by the data."""
        if self.num_classes is not None and self.num_classes != data_num_classes:
            raise InvalidSearchConfigError(
                f"the space has num_classes={self.num_classes}, the data set {self.data} has {data_num_classes}: "
                "drop --num-classes or use a data set with that many classes"
            )


@dataclass(frozen=True)
class ResolvedSchedule:
    """What a search runs with once its defaults are filled in (written to search_summary.json)."""

    temperature_decay: float
    final_temperature: float
    theta_lr: float
    theta_passes: int  # passes over the theta split per theta epoch
    theta_steps: int  # theta steps over the whole search
    loss: LossConfig

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    temperature: float
    trained_theta: bool
    weight_loss: float
    weight_accuracy: float
    theta_loss: float | None
    val_accuracy: float
    expected_latency_ms: float
    argmax_latency_ms: float
    theta: list[list[float]]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class PhaseStats:
    loss_sum: float = 0.0
    correct: int = 0
    samples: int = 0
    latency_ms_sum: float = 0.0

    @property
    def loss(self) -> float:
        return self.loss_sum / max(1, self.samples)

    @property
    def accuracy(self) -> float:
        return self.correct / max(1, self.samples)

    @property
    def latency_ms(self) -> float:
        return self.latency_ms_sum / max(1, self.samples)


StepCallback = Callable[[str, int, int, PhaseStats, float], None]
EpochCallback = Callable[[EpochRecord], None]


@dataclass
class SearchState:
    """What a checkpoint holds besides the configuration."""

    model: Supernet
    weight_optimizer: torch.optim.SGD
    theta_optimizer: torch.optim.Adam
    weight_scheduler: torch.optim.lr_scheduler.CosineAnnealingLR
    history: list[EpochRecord] = field(default_factory=list)


def _epoch_seed(seed: int, epoch: int, phase: int, rank: int) -> int:
    # Distinct, reproducible streams per (epoch, phase, rank); the constants only spread them apart.
    return (seed * 1_000_003 + epoch * 10_007 + phase * 101 + rank) % (2**63)


def build_state(config: SearchConfig, space: SearchSpace, theta_lr: float) -> SearchState:
    torch.manual_seed(config.seed)
    model = Supernet(space, config.mode, config.path_groups)
    if config.sync_bn:
        # Replaces the BatchNorm children in place, keeping their parameters; draws no random numbers, so the
        # initialisation is the same as without. Without a process group SyncBatchNorm is plain BatchNorm.
        nn.SyncBatchNorm.convert_sync_batchnorm(model)
    weight_optimizer = torch.optim.SGD(
        model.weight_parameters(),
        lr=config.weight_lr,
        momentum=config.weight_momentum,
        weight_decay=config.weight_decay,
    )
    theta_optimizer = torch.optim.Adam([model.theta], lr=theta_lr, weight_decay=config.theta_weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(weight_optimizer, T_max=config.epochs)
    return SearchState(model, weight_optimizer, theta_optimizer, scheduler)


def save_checkpoint(path: Path, config: SearchConfig, state: SearchState) -> None:
    payload = {
        "config": config.to_json(),
        "model": state.model.state_dict(),
        "weight_optimizer": state.weight_optimizer.state_dict(),
        "theta_optimizer": state.theta_optimizer.state_dict(),
        "weight_scheduler": state.weight_scheduler.state_dict(),
        "history": [record.to_json() for record in state.history],
    }
    temporary = path.with_suffix(".tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)  # atomic: a kill mid-write never leaves a truncated checkpoint


def load_checkpoint(path: Path, config: SearchConfig, state: SearchState) -> None:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    # A field added to SearchConfig after the checkpoint was written has the value that meant the old behaviour.
    defaults = {**SearchConfig().to_json(), **LEGACY_DEFAULTS}
    stored = {**defaults, **payload["config"]}
    stored["loss"] = {**defaults["loss"], **LEGACY_LOSS_DEFAULTS, **stored["loss"]}
    if stored != config.to_json():
        changed = sorted(k for k, v in config.to_json().items() if stored[k] != v)
        raise CheckpointError(f"{path} is from a different search (differs in: {', '.join(changed)})")
    state.model.load_state_dict(payload["model"])
    state.weight_optimizer.load_state_dict(payload["weight_optimizer"])
    state.theta_optimizer.load_state_dict(payload["theta_optimizer"])
    state.weight_scheduler.load_state_dict(payload["weight_scheduler"])
    state.history = [EpochRecord(**record) for record in payload["history"]]


@dataclass(frozen=True)
class PhaseRunner:
    """What every training phase of one search shares."""

    model: nn.Module  # the supernet, or its DistributedDataParallel wrapper
    supernet: Supernet
    dataset: Dataset
    table: LatencyTable
    config: SearchConfig
    loss: LossConfig  # resolved (unit and smoothing filled in)
    context: DistContext
    device: torch.device
    on_step: StepCallback | None

    def run(
        self,
        optimizer: torch.optim.Optimizer,
        batches: list[torch.Tensor],
        tau: float,
        phase: str,
        noise_seed: int,
    ) -> PhaseStats:
        """One pass over `batches` (global batches), stepping `optimizer` only (the weights' or theta's).

        The Gumbel noise of each global batch is drawn from `noise_seed` identically on every rank and sliced
        like the batch, so each sample gets the same draw whatever the number of processes.
        """
        stats = PhaseStats()
        noise_generator = torch.Generator().manual_seed(noise_seed)
        theta_like = torch.empty(self.supernet.theta.shape)
        local_batches = [shard_batch(batch, self.context) for batch in batches]
        loaded = iterate_batches(self.dataset, local_batches, self.config.workers)
        for step, (images, labels) in enumerate(loaded):
            noise = shard_batch(
                sample_gumbel_noise(len(batches[step]), theta_like, noise_generator), self.context
            )
            images, labels = images.to(self.device), labels.to(self.device)
            logits, weights = self.model(images, tau, noise=noise.to(self.device))
            ce_sum = cross_entropy(logits, labels, self.loss, reduction="sum")
            latency_sum = self.table.expected_ms(weights).sum()
            totals = global_sum(torch.stack([ce_sum, latency_sum]), self.context)
            global_count = len(batches[step])
            mean_latency_ms = totals[1] / global_count
            loss = search_loss(totals[0] / global_count, mean_latency_ms, self.loss)
            self.supernet.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            stats.loss_sum += float(loss.detach()) * global_count
            stats.samples += global_count
            stats.latency_ms_sum += float(mean_latency_ms.detach()) * global_count
            stats.correct += int(global_sum((logits.argmax(1) == labels).sum().detach(), self.context))
            if self.on_step is not None:
                self.on_step(phase, step + 1, len(batches), stats, tau)
        return stats


@torch.no_grad()
def evaluate_supernet(
    supernet: Supernet, dataset: Dataset, tau: float, batch_size: int, workers: int, device: torch.device
) -> float:
    """Top-1 on the validation split without Gumbel noise: the weighted supernet with softmax(theta / tau),
    or the single-path supernet's argmax path.

    BatchNorm normalises with each batch's own statistics: a supernet's running statistics mix every path
    it trained and misjudge any one of them (single-path NAS recalibrates them for that reason). Momentum 0
    keeps the running statistics untouched; batches are balanced so that none is a single sample.
    """
    norms = [
        module for module in supernet.modules() if isinstance(module, (nn.BatchNorm2d, nn.SyncBatchNorm))
    ]
    momenta = [norm.momentum for norm in norms]
    supernet.train()
    for norm in norms:
        norm.momentum = 0.0
    batches = list(torch.arange(len(dataset)).tensor_split(max(1, len(dataset) // batch_size)))
    correct = total = 0
    for images, labels in iterate_batches(dataset, batches, workers):
        images, labels = images.to(device), labels.to(device)
        noise = torch.zeros((images.shape[0], *supernet.theta.shape), device=device)
        logits, _ = supernet(images, tau, noise=noise)
        correct += int((logits.argmax(1) == labels).sum())
        total += labels.shape[0]
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    return correct / max(1, total)


@dataclass
class SearchResult:
    state: SearchState
    space: SearchSpace
    table: LatencyTable
    schedule: ResolvedSchedule
    outputs: list[Path]
    costs: LutCosts  # the LUT's cost model as the search used it (work scale and boundary share fitted for its space)


def _check_sync_bn(config: SearchConfig, context: DistContext, device: torch.device) -> None:
    if not config.sync_bn:
        return
    if config.mode == "single_path":
        # Each rank runs only the candidates its own samples drew, so the ranks' SyncBatchNorm collectives
        # would not pair up (a hang or a mismatch).
        raise InvalidSearchConfigError(
            "--sync-bn works with --mode weighted only: single_path ranks run different candidates"
        )
    if context.enabled and device.type != "cuda":
        # torch's SyncBatchNorm refuses CPU tensors once a process group exists (checked in torch 2.13).
        raise InvalidSearchConfigError(
            f"--sync-bn needs CUDA devices: torch's SyncBatchNorm does not run on {device.type} (gloo); "
            "use --torch-device cuda or drop --sync-bn"
        )


def run_search(
    config: SearchConfig,
    lut: Mapping[str, float] | LutCosts,
    out_dir: Path,
    resume: bool = False,
    context: DistContext | None = None,
    on_step: StepCallback | None = None,
    on_epoch_end: EpochCallback | None = None,
    device: torch.device | None = None,
    sample_count: int = 6,
) -> SearchResult:
    """Run (or resume) a search with the LUT `lut` (its costs, or plain medians key -> us).

    Rank 0 writes the checkpoint and theta history into `out_dir` every epoch, and at the end the argmax
    architecture, with a target the most probable architecture within it (budget.py), and `sample_count`
    architectures sampled from P_theta, each with its predicted latency, and search_summary.json.
    """
    context = context or DistContext()
    device = device or torch.device("cpu")
    costs = as_lut_costs(lut) if config.lut_overhead_once else as_lut_costs(lut).raw()
    data = load_data(config.data, config.resolution, config.seed)
    config.check_classes(data.num_classes)
    space = config.space(data.num_classes)
    costs = fit_network_costs(costs, space)  # share and offset 0 where the LUT lacks the fit networks: said in the summary
    table = latency_table_for_space(space, costs)
    if config.loss.target_ms is not None:
        check_target(table, config.loss.target_ms)
    num_train = min(len(data.train), config.max_train_samples or len(data.train))
    split = split_for_search(num_train, config.weight_fraction, config.seed)
    smallest = min(len(split.weight_indices), len(split.theta_indices))
    if smallest < config.batch_size:
        raise InvalidSearchConfigError(
            f"the theta split has {smallest} samples, fewer than one batch of {config.batch_size}: "
            "lower --batch-size or use more training samples"
        )
    if config.batch_size % context.world_size:
        raise InvalidSearchConfigError(
            f"--batch-size {config.batch_size} (global) must be divisible by the {context.world_size} processes"
        )
    _check_sync_bn(config, context, device)
    schedule = config.schedule(len(split.theta_indices) // config.batch_size, table.min_ms())
    state = build_state(config, space, schedule.theta_lr)
    # The weights in the inputs' layout, so that no convolution reorders them.
    state.model.to(device, memory_format=activation_layout(device))
    checkpoint = out_dir / CHECKPOINT_NAME
    if resume:
        if not checkpoint.is_file():
            raise CheckpointError(f"--resume: no checkpoint at {checkpoint}")
        load_checkpoint(checkpoint, config, state)
    warmup = warmup_epochs(config.epochs, config.warmup_fraction)
    model: nn.Module = state.model
    if context.enabled:
        # single_path leaves the undrawn candidates without gradients in a step.
        model = DistributedDataParallel(
            state.model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=config.mode == "single_path",
        )
    runner = PhaseRunner(
        model, state.model, data.train, table, config, schedule.loss, context, device, on_step
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    for epoch in range(len(state.history), config.epochs):
        tau = temperature(epoch, config.initial_temperature, schedule.temperature_decay)
        state.model.train()
        # The global generator drives data augmentation and DataLoader workers; reseeded per epoch for resume.
        torch.manual_seed(_epoch_seed(config.seed, epoch, 0, context.rank))
        batches = global_batches(
            split.weight_indices, config.batch_size, _epoch_seed(config.seed, epoch, 0, 0)
        )
        noise_seed = _epoch_seed(config.seed, epoch, 2, 0)
        weight_stats = runner.run(state.weight_optimizer, batches, tau, "weights", noise_seed)
        theta_stats = None
        if epoch >= warmup:
            torch.manual_seed(_epoch_seed(config.seed, epoch, 1, context.rank))
            batches = theta_batches(split.theta_indices, config, epoch, schedule.theta_passes)
            noise_seed = _epoch_seed(config.seed, epoch, 3, 0)
            theta_stats = runner.run(state.theta_optimizer, batches, tau, "theta", noise_seed)
        state.weight_scheduler.step()
        record = EpochRecord(
            epoch=epoch,
            temperature=tau,
            trained_theta=theta_stats is not None,
            weight_loss=weight_stats.loss,
            weight_accuracy=weight_stats.accuracy,
            theta_loss=None if theta_stats is None else theta_stats.loss,
            val_accuracy=evaluate_supernet(
                state.model, data.val, tau, config.batch_size, config.workers, device
            ),
            expected_latency_ms=(theta_stats or weight_stats).latency_ms,
            argmax_latency_ms=predicted_latency_ms(state.model.argmax_blocks(), space, costs),
            theta=state.model.theta.detach().cpu().tolist(),
        )
        state.history.append(record)
        if context.is_main:
            save_checkpoint(checkpoint, config, state)
            write_history(out_dir / HISTORY_NAME, state.history)
        if on_epoch_end is not None:
            on_epoch_end(record)
    outputs = []
    if context.is_main:
        outputs = write_search_outputs(
            out_dir, state.model, space, costs, table, config, schedule, sample_count
        )
    return SearchResult(state, space, table, schedule, outputs, costs)


def theta_batches(indices: torch.Tensor, config: SearchConfig, epoch: int, passes: int) -> list[torch.Tensor]:
    """`passes` passes over the theta split, each reshuffled (the first as a one-pass search shuffles it)."""
    batches: list[torch.Tensor] = []
    for index in range(passes):
        # Phases 0-3 are taken; later passes use phases 10, 11, ... (distinct seeds, reproducible on resume).
        phase = 1 if index == 0 else 9 + index
        batches += global_batches(indices, config.batch_size, _epoch_seed(config.seed, epoch, phase, 0))
    return batches


def write_history(path: Path, history: list[EpochRecord]) -> None:
    payload = {"candidates": list(CANDIDATES), "epochs": [record.to_json() for record in history]}
    path.write_text(json.dumps(payload, indent=1))


ARGMAX_NAME = "arch_argmax.json"
TARGET_NAME = "arch_target.json"
SAMPLES_DIR = "samples"


def predicted_latency_ms(blocks: list[str], space: SearchSpace, costs: LutCosts) -> float:
    """The LUT's prediction for one architecture: what every epoch record and architecture file reports."""
    return predict_latency_us(costs, Architecture(tuple(blocks)), space) / US_PER_MS


def write_architecture(
    path: Path, blocks: list[str], space: SearchSpace, costs: LutCosts, budget: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An architecture file (readable by `dnas train/export --arch`) with its predicted latency (and, from a
    search with a budget, how it stands to the target); returns what it says, for the search's summary."""
    predicted_ms = predicted_latency_ms(blocks, space, costs)
    arch = Architecture(tuple(blocks))
    save_architecture(path, arch, space.params, predicted_ms, budget)
    return {
        "arch": arch.to_string(),
        "predicted_latency_ms": predicted_ms,
        **({"budget": budget} if budget else {}),
    }


def budget_record(choice: BudgetChoice, target_ms: float, predicted_ms: float) -> dict[str, Any]:
    """The target and how far under it the most probable architecture within the budget landed."""
    return {
        "target_ms": target_ms,
        "landed_pct": 100.0 * (predicted_ms - target_ms) / target_ms,
        "in_budget_window": choice.in_window,
        "log_probability": choice.log_probability,
    }


def write_search_outputs(
    out_dir: Path,
    supernet: Supernet,
    space: SearchSpace,
    costs: LutCosts,
    table: LatencyTable,
    config: SearchConfig,
    schedule: ResolvedSchedule,
    sample_count: int,
) -> list[Path]:
    """arch_argmax.json, arch_target.json (with a target), `sample_count` architectures drawn from P_theta
    (samples/arch_NN.json) and search_summary.json (the settings as resolved, the LUT's cost model, the results)."""
    written = [out_dir / ARGMAX_NAME]
    argmax = write_architecture(written[0], supernet.argmax_blocks(), space, costs)
    target = None
    if config.loss.target_ms is not None:
        target_ms = config.loss.target_ms
        choice = most_probable_within(table, supernet.theta, target_ms)
        budget = budget_record(choice, target_ms, predicted_latency_ms(choice.blocks, space, costs))
        written.append(out_dir / TARGET_NAME)
        target = write_architecture(written[-1], choice.blocks, space, costs, budget)
    samples_dir = out_dir / SAMPLES_DIR
    samples_dir.mkdir(exist_ok=True)
    generator = torch.Generator().manual_seed(config.seed)
    for index, blocks in enumerate(supernet.sample_blocks(sample_count, generator)):
        path = samples_dir / f"arch_{index:02d}.json"
        write_architecture(path, blocks, space, costs)
        written.append(path)
    summary = {
        "config": config.to_json(),
        "schedule": schedule.to_json(),
        "lut": costs.describe(),
        "fastest_ms": table.min_ms(),
        "argmax": argmax,
        "target": target,
    }
    written.append(out_dir / SUMMARY_NAME)
    written[-1].write_text(json.dumps(summary, indent=2))
    return written
