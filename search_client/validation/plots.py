"""`dnas show`: a search's outcome as a table and as a PNG of each layer's candidate probabilities per epoch."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from search_client.errors import SearchClientError
from search_client.search.loop import HISTORY_NAME

PLOT_NAME = "theta_probabilities.png"
PANELS_PER_ROW = 6


@dataclass(frozen=True)
class ThetaHistory:
    candidates: list[str]
    epochs: list[int]
    probabilities: torch.Tensor  # (epochs, layers, candidates)
    temperatures: list[float]
    val_accuracy: list[float]
    argmax_latency_ms: list[float]

    @property
    def final(self) -> torch.Tensor:
        return self.probabilities[-1]


def read_history(search_dir: Path) -> ThetaHistory:
    path = search_dir / HISTORY_NAME
    try:
        body = json.loads(path.read_text())
        records = body["epochs"]
        if not records:
            raise SearchClientError(f"{path} has no finished epoch yet")
        theta = torch.tensor([record["theta"] for record in records])
        return ThetaHistory(
            candidates=list(body["candidates"]),
            epochs=[record["epoch"] for record in records],
            probabilities=torch.softmax(theta, dim=-1),
            temperatures=[record["temperature"] for record in records],
            val_accuracy=[record["val_accuracy"] for record in records],
            argmax_latency_ms=[record["argmax_latency_ms"] for record in records],
        )
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SearchClientError(f"{search_dir} is not a search directory ({HISTORY_NAME}: {exc})") from exc


def plot_probabilities(history: ThetaHistory, path: Path) -> Path:
    """One small panel per layer: each candidate's probability P_theta over the epochs."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers
    import matplotlib.pyplot as plt

    layers = history.probabilities.shape[1]
    rows = math.ceil(layers / PANELS_PER_ROW)
    figure, axes = plt.subplots(rows, PANELS_PER_ROW, figsize=(3 * PANELS_PER_ROW, 2.2 * rows), sharey=True)
    colours = plt.get_cmap("tab10")
    for layer, axis in enumerate(axes.flat):
        if layer >= layers:
            axis.axis("off")
            continue
        for index, name in enumerate(history.candidates):
            axis.plot(
                history.epochs, history.probabilities[:, layer, index], color=colours(index), label=name
            )
        axis.set_title(f"layer {layer + 1}", fontsize=9)
        axis.set_ylim(0, 1)
        axis.tick_params(labelsize=7)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower right", ncol=3, fontsize=8)
    figure.suptitle("P_theta per layer over the search (x: epoch)")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path
