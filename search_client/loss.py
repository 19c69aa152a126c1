"""The FBNet search loss: cross-entropy combined with the expected latency from the LUT.

`multiplicative` is the paper's CE * alpha * log(LAT)^beta, LAT in a unit where every network takes more than
one unit (the paper's "e.g. ms"; `latency_unit_ms` picks another, e.g. 0.01 for a CPU LUT of 0.1-1 ms networks);
`additive` is CE + lambda * LAT for LUTs whose networks run under 1 ms; `none` is CE alone, the latency-unaware
baseline (alpha = 0 in the paper's RQ2: the multiplicative form with alpha = 0 would zero the whole loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from search_client.errors import LatencyLossUndefinedError

LossForm = Literal["multiplicative", "additive", "none"]
LOSS_FORMS: tuple[LossForm, ...] = ("multiplicative", "additive", "none")


@dataclass(frozen=True)
class LossConfig:
    form: LossForm = "multiplicative"
    alpha: float = 0.2
    beta: float = 0.6
    lambda_per_ms: float = 0.1
    latency_unit_ms: float = 1.0

    def check_defined(self, min_latency_ms: float) -> None:
        """Refuse, before training, a LUT on which log(LAT) can be <= 0 for some architecture."""
        if self.form == "multiplicative" and min_latency_ms <= self.latency_unit_ms:
            raise LatencyLossUndefinedError(
                f"the fastest architecture in this LUT takes {min_latency_ms:.3f} ms; the multiplicative loss "
                f"CE * alpha * log(LAT)^beta needs LAT > 1 unit ({self.latency_unit_ms:g} ms) everywhere. Use "
                "--latency-loss additive (CE + lambda * LAT_ms), or a smaller --latency-unit-ms."
            )


def search_loss(
    cross_entropy: torch.Tensor, expected_latency_ms: torch.Tensor, config: LossConfig
) -> torch.Tensor:
    """Combine the batch-mean cross-entropy and the batch-mean expected latency (both scalars) into one loss."""
    if config.form == "multiplicative":
        latency_units = expected_latency_ms / config.latency_unit_ms
        return cross_entropy * config.alpha * torch.log(latency_units) ** config.beta
    if config.form == "additive":
        return cross_entropy + config.lambda_per_ms * expected_latency_ms
    return cross_entropy
