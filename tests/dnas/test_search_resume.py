"""The search loop: checkpoints every epoch, and `--resume` after an interruption equals an uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from fbnet_core.blocks import CANDIDATES
from fbnet_core.formats.architecture_file import load_architecture
from fbnet_core.keys import ops_for_space
from fbnet_core.predict import predict_latency_us
from search_client.errors import CheckpointError, InvalidSearchConfigError
from search_client.search.distributed import DistContext
from search_client.search.loop import (
    ARGMAX_NAME,
    CHECKPOINT_NAME,
    HISTORY_NAME,
    SAMPLES_DIR,
    EpochRecord,
    SearchConfig,
    run_search,
)
from search_client.search.loss import LossConfig

CONFIG = SearchConfig(
    data="fake", resolution=8, width=0.25, head_channels=16, epochs=2, batch_size=16, max_train_samples=80
)


def lut_us(config: SearchConfig) -> dict[str, float]:
    return {op.key: 400.0 + 13.0 * index for index, op in enumerate(ops_for_space(config.space(10)))}


class Interrupted(Exception):
    pass


def interrupt_after(epoch: int):
    def on_epoch_end(record: EpochRecord) -> None:
        if record.epoch == epoch:
            raise Interrupted

    return on_epoch_end


@pytest.mark.parametrize("mode", ["weighted", "single_path"])
def test_resumed_search_equals_uninterrupted_search(tmp_path: Path, mode: str) -> None:
    # single_path needs more than a 1x1 final map (BatchNorm over one-sample groups), hence 16 px.
    resolution = 16 if mode == "single_path" else CONFIG.resolution
    config = SearchConfig(**{**CONFIG.__dict__, "mode": mode, "resolution": resolution})
    full = run_search(config, lut_us(config), tmp_path / "full")
    with pytest.raises(Interrupted):
        run_search(config, lut_us(config), tmp_path / "cut", on_epoch_end=interrupt_after(0))
    saved = json.loads((tmp_path / "cut" / HISTORY_NAME).read_text())
    assert [record["epoch"] for record in saved["epochs"]] == [0]
    resumed = run_search(config, lut_us(config), tmp_path / "cut", resume=True)

    assert [r.epoch for r in resumed.state.history] == [0, 1]
    assert resumed.state.history == full.state.history
    full_weights, resumed_weights = full.state.model.state_dict(), resumed.state.model.state_dict()
    assert all(torch.equal(full_weights[name], resumed_weights[name]) for name in full_weights)
    assert (
        full.state.theta_optimizer.state_dict()["state"].keys()
        == resumed.state.theta_optimizer.state_dict()["state"].keys()
    )
    # Theta moved (epoch 0 is the warm-up, epoch 1 trains theta) and the outputs are the same architectures.
    assert not torch.equal(full.state.model.theta, torch.zeros_like(full.state.model.theta))
    assert (tmp_path / "full" / "arch_argmax.json").read_text() == (
        tmp_path / "cut" / "arch_argmax.json"
    ).read_text()


def test_outputs_are_loadable_architectures_with_predicted_latency(tmp_path: Path) -> None:
    result = run_search(CONFIG, lut_us(CONFIG), tmp_path, sample_count=3)
    assert (tmp_path / CHECKPOINT_NAME).is_file()
    assert [path.name for path in result.outputs] == [
        "arch_argmax.json",
        "arch_00.json",
        "arch_01.json",
        "arch_02.json",
        "search_summary.json",
    ]
    summary = json.loads(result.outputs[-1].read_text())
    assert summary["schedule"] == result.schedule.to_json() and summary["target"] is None
    assert summary["argmax"]["predicted_latency_ms"] == load_architecture(result.outputs[0]).predicted_latency_ms
    for path in result.outputs[:-1]:
        loaded = load_architecture(path)
        assert loaded.params == result.space.params
        # The file's prediction is the LUT's for its architecture (the search's latency table holds the
        # same entries: a one-hot weight on these blocks gives the same latency).
        assert loaded.predicted_latency_ms == pytest.approx(
            predict_latency_us(lut_us(CONFIG), loaded.arch, result.space) / 1000.0
        )
        one_hot = torch.zeros(1, len(loaded.arch.blocks), len(CANDIDATES))
        for layer, name in enumerate(loaded.arch.blocks):
            one_hot[0, layer, CANDIDATES.index(name)] = 1.0
        assert result.table.expected_ms(one_hot).item() == pytest.approx(loaded.predicted_latency_ms, rel=1e-5)
    history = json.loads((tmp_path / HISTORY_NAME).read_text())
    assert [record["trained_theta"] for record in history["epochs"]] == [False, True]


def test_resume_refuses_a_checkpoint_of_another_search(tmp_path: Path) -> None:
    run_search(SearchConfig(**{**CONFIG.__dict__, "epochs": 1}), lut_us(CONFIG), tmp_path)
    with pytest.raises(CheckpointError, match="differs in: epochs"):
        run_search(CONFIG, lut_us(CONFIG), tmp_path, resume=True)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        run_search(CONFIG, lut_us(CONFIG), tmp_path / "empty", resume=True)


def test_impossible_settings_are_refused_before_training(tmp_path: Path) -> None:
    config = SearchConfig(**{**CONFIG.__dict__, "max_train_samples": 40})
    with pytest.raises(InvalidSearchConfigError, match="fewer than one batch"):
        run_search(config, lut_us(config), tmp_path)


def test_sync_bn_in_one_process_equals_batchnorm_and_resumes(tmp_path: Path) -> None:
    """Without a process group SyncBatchNorm normalises like BatchNorm, so a --sync-bn search in one process,
    interrupted and resumed from its checkpoint, must equal a plain search: weights, running statistics (the
    supernet evaluation must leave them alone), history, argmax and sampled architectures."""
    config = SearchConfig(**{**CONFIG.__dict__, "sync_bn": True})
    plain = run_search(CONFIG, lut_us(CONFIG), tmp_path / "plain")
    with pytest.raises(Interrupted):
        run_search(config, lut_us(config), tmp_path / "sync", on_epoch_end=interrupt_after(0))
    synced = run_search(config, lut_us(config), tmp_path / "sync", resume=True)

    norm_types = {
        type(module) for module in synced.state.model.modules() if "BatchNorm" in type(module).__name__
    }
    assert norm_types == {nn.SyncBatchNorm}
    assert synced.state.history == plain.state.history
    plain_weights, synced_weights = plain.state.model.state_dict(), synced.state.model.state_dict()
    assert plain_weights.keys() == synced_weights.keys()
    assert all(torch.equal(plain_weights[name], synced_weights[name]) for name in plain_weights)
    for name in (ARGMAX_NAME, f"{SAMPLES_DIR}/arch_00.json"):
        assert (tmp_path / "plain" / name).read_text() == (tmp_path / "sync" / name).read_text()


def test_sync_bn_is_refused_where_torch_cannot_run_it(tmp_path: Path) -> None:
    config = SearchConfig(**{**CONFIG.__dict__, "sync_bn": True, "mode": "single_path", "resolution": 16})
    with pytest.raises(InvalidSearchConfigError, match="--mode weighted only"):
        run_search(config, lut_us(config), tmp_path)
    # Two CPU processes: torch's SyncBatchNorm would raise mid-step; refused before any process-group call.
    config = SearchConfig(**{**CONFIG.__dict__, "sync_bn": True})
    with pytest.raises(InvalidSearchConfigError, match="--sync-bn needs CUDA devices"):
        run_search(config, lut_us(config), tmp_path, context=DistContext(rank=0, world_size=2))


def test_a_checkpoint_written_before_a_config_field_existed_resumes(tmp_path: Path) -> None:
    # Label smoothing given as 0: what a checkpoint from before --label-smoothing ran with.
    config = SearchConfig(**{**CONFIG.__dict__, "epochs": 1, "loss": LossConfig(label_smoothing=0.0)})
    run_search(config, lut_us(config), tmp_path)
    payload = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    del payload["config"]["sync_bn"]  # as written before --sync-bn
    del payload["config"]["loss"]["label_smoothing"]  # and before --label-smoothing
    torch.save(payload, tmp_path / CHECKPOINT_NAME)
    resumed = run_search(config, lut_us(config), tmp_path, resume=True)
    assert [record.epoch for record in resumed.state.history] == [0]
    # A checkpoint from before the theta passes existed ran one pass: today's default would be another search.
    del payload["config"]["theta_passes"]
    torch.save(payload, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(CheckpointError, match="differs in: theta_passes"):
        run_search(config, lut_us(config), tmp_path, resume=True)


def test_alpha_zero_trains_on_cross_entropy_alone(tmp_path: Path) -> None:
    """The paper's latency-unaware baseline: with alpha 0 the search trains exactly as with CE alone - not on a
    loss of zero, which would leave the weights and theta where they started."""
    unaware = SearchConfig(**{**CONFIG.__dict__, "loss": LossConfig(alpha=0.0)})
    ce_only = SearchConfig(**{**CONFIG.__dict__, "loss": LossConfig(form="none")})
    first = run_search(unaware, lut_us(unaware), tmp_path / "alpha0")
    second = run_search(ce_only, lut_us(ce_only), tmp_path / "none")
    assert first.state.history == second.state.history
    assert all(record.weight_loss > 0.1 for record in first.state.history)  # smoothed CE, not 0
    assert first.state.history[-1].theta_loss is not None and first.state.history[-1].theta_loss > 0.1
    assert torch.count_nonzero(first.state.model.theta) > 0  # theta moved


def test_a_search_with_a_budget_writes_the_most_probable_architecture_within_it(tmp_path: Path) -> None:
    lut = lut_us(CONFIG)
    table = run_search(CONFIG, lut, tmp_path / "plain", sample_count=0).table
    uniform_ms = float(table.block_ms.mean(dim=1).sum()) + table.fixed_ms
    target_ms = round((table.min_ms() + uniform_ms) / 2, 3)
    config = SearchConfig(**{**CONFIG.__dict__, "loss": LossConfig(target_ms=target_ms)})
    result = run_search(config, lut, tmp_path / "budget", sample_count=0)
    chosen = load_architecture(tmp_path / "budget" / "arch_target.json")  # a loadable architecture file
    assert chosen.predicted_latency_ms == pytest.approx(predict_latency_us(lut, chosen.arch, result.space) / 1000.0)
    assert chosen.budget is not None and chosen.budget["in_budget_window"]
    assert chosen.predicted_latency_ms is not None and 0.95 * target_ms <= chosen.predicted_latency_ms <= target_ms
    assert chosen.budget["target_ms"] == target_ms
    assert chosen.budget["landed_pct"] == pytest.approx(100 * (chosen.predicted_latency_ms - target_ms) / target_ms)
    summary = json.loads((tmp_path / "budget" / "search_summary.json").read_text())
    assert summary["target"]["budget"] == chosen.budget and summary["config"]["loss"]["target_ms"] == target_ms
