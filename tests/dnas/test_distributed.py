"""Data-parallel search on 2 gloo processes: the latency-aware loss and its gradients equal one process's over
the combined batch (the multi-GPU latency-accumulator bug of public reimplementations would fail this).

BatchNorm is put in eval mode in both runs: without SyncBatchNorm (GPU-only in torch) each rank normalises with
its own half-batch statistics, which is a separate, known effect and not the latency term under test.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from fbnet_core.keys import ops_for_space
from search_client.lut.latency import latency_table_for_space
from search_client.search.data import global_batches, load_data
from search_client.search.distributed import DistContext
from search_client.search.loop import PhaseRunner, SearchConfig, build_state

WORLD_SIZE = 2
MODES = ("weighted", "single_path")


def make_config(mode: str, path_groups: int) -> SearchConfig:
    return SearchConfig(
        data="fake",
        resolution=16,
        width=0.25,
        head_channels=32,
        batch_size=8,
        mode=mode,
        path_groups=path_groups,
    )


def one_phase_gradients(
    mode: str, context: DistContext, path_groups: int = 1
) -> tuple[dict[str, torch.Tensor], float]:
    """Run two steps of the real PhaseRunner (theta phase) and return the last step's gradients and the loss."""
    config = make_config(mode, path_groups)
    data = load_data(config.data, config.resolution, seed=0)
    space = config.space(data.num_classes)
    lut_us = {op.key: 900.0 + 37.0 * index for index, op in enumerate(ops_for_space(space))}
    table = latency_table_for_space(space, lut_us)
    schedule = config.schedule(theta_batches_per_pass=2, fastest_ms=table.min_ms())
    state = build_state(config, space, schedule.theta_lr)
    state.model.eval()  # see the module docstring
    model = state.model
    if context.enabled:
        model = DistributedDataParallel(state.model, find_unused_parameters=mode == "single_path")
    runner = PhaseRunner(
        model, state.model, data.train, table, config, schedule.loss, context, torch.device("cpu"), None
    )
    batches = global_batches(torch.arange(16), config.batch_size, seed=5)
    stats = runner.run(state.theta_optimizer, batches, tau=2.0, phase="theta", noise_seed=11)
    grads = {
        name: param.grad.detach().clone()
        for name, param in state.model.named_parameters()
        if param.grad is not None
    }
    return grads, stats.loss


def worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE)
    try:
        context = DistContext(rank=rank, world_size=WORLD_SIZE)
        results = {mode: one_phase_gradients(mode, context) for mode in MODES}
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out_dir = tmp_path_factory.mktemp("ddp")
    mp.start_processes(worker, args=(free_port(), str(out_dir)), nprocs=WORLD_SIZE, start_method="spawn")
    return [torch.load(out_dir / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD_SIZE)]


@pytest.mark.parametrize("mode", MODES)
def test_two_gloo_processes_equal_one_process_over_the_combined_batch(two_process_results, mode: str) -> None:
    # Each process draws its own single-path group: one process over the combined batch draws one per process.
    single_grads, single_loss = one_phase_gradients(mode, DistContext(), path_groups=WORLD_SIZE)
    for rank_results in two_process_results:
        grads, loss = rank_results[mode]
        assert loss == pytest.approx(single_loss, rel=1e-5)
        assert set(grads) == set(single_grads)
        assert torch.allclose(grads["theta"], single_grads["theta"], rtol=1e-4, atol=1e-7)
        assert single_grads["theta"].abs().sum() > 0
        mismatched = [
            name
            for name in grads
            if not torch.allclose(grads[name], single_grads[name], rtol=1e-3, atol=1e-6)
        ]
        assert not mismatched
