"""The FBNet search loss: cross-entropy combined with the expected latency from the LUT.

`multiplicative` is the paper's CE * alpha * log(LAT)^beta; `alpha` 0 is the paper's latency-unaware baseline and
means cross-entropy alone (the product itself would be zero). LAT is counted in a unit where every architecture
takes more than one unit. By default the unit comes from the LUT: the fastest architecture of the space is
`FASTEST_ARCHITECTURE_UNITS` units, so log(LAT) and with it the latency's pull, beta / log(LAT) per relative change
of LAT, are the same for a 10 us LUT and a 100 ms one. e^2 units mirror the paper's own setting (ms on a phone, where
the fastest networks of the space take several ms); `latency_unit_ms` fixes the unit instead (the paper: 1 ms).
`additive` is CE + lambda * LAT_ms; `none` is CE alone.

`target_ms` turns the latency term into a budget (MnasNet, TuNAS; the paper has none): CE + target_weight *
|LAT / T - 1|, TuNAS's absolute-value reward as a loss, which pulls the expected latency to T from either side - a
network well under budget wastes latency that could buy accuracy. The search then picks the most probable
architecture within the budget (`budget.py`).

`label_smoothing` keeps the search's cross-entropy away from 0. The multiplicative form trades *relative* CE
against beta / log(LAT) times relative latency, and was tuned where the search CE is 1 - 2 (ImageNet); on an easy
data set (digits: CE ~ 0.1) every small gain in CE is a large relative one and the latency term barely pulls.
Smoothing epsilon over K classes puts a floor of H((1 - eps + eps / K, eps / K, ...)) under the CE (K = 10:
0.50 at 0.1, 0.87 at 0.2, 1.18 at 0.3), which restores the paper's balance; the target's argmax is still the label.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from search_client.errors import InvalidSearchConfigError, LatencyLossUndefinedError
from search_client.search.choices import LOSS_FORMS, LossForm

FASTEST_ARCHITECTURE_UNITS = math.e**2
DEFAULT_LABEL_SMOOTHING = 0.3


@dataclass(frozen=True)
class LossConfig:
    form: LossForm = "multiplicative"
    alpha: float = 0.2
    beta: float = 0.6
    lambda_per_ms: float = 0.1
    latency_unit_ms: float | None = None  # None: from the LUT (the fastest architecture is e^2 units)
    label_smoothing: float | None = None  # None: DEFAULT_LABEL_SMOOTHING, or 0 under the paper's schedule
    target_ms: float | None = None
    target_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.form not in LOSS_FORMS:
            raise InvalidSearchConfigError(
                f"--latency-loss: expected one of {', '.join(LOSS_FORMS)}, got {self.form!r}"
            )
        if self.label_smoothing is not None and not 0.0 <= self.label_smoothing < 1.0:
            raise InvalidSearchConfigError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.alpha < 0.0 or self.beta <= 0.0:
            raise InvalidSearchConfigError(
                f"--alpha must be >= 0 and --beta > 0, got {self.alpha} and {self.beta}"
            )
        if self.latency_unit_ms is not None and not self.latency_unit_ms > 0.0:
            raise InvalidSearchConfigError(f"--latency-unit-ms must be > 0, got {self.latency_unit_ms}")
        if self.target_ms is not None:
            if not self.target_ms > 0.0:
                raise InvalidSearchConfigError(f"--target-ms must be > 0, got {self.target_ms}")
            if self.form != "multiplicative" or self.alpha == 0.0:
                # A budget is its own latency term: combined with another it would be two different searches.
                raise InvalidSearchConfigError(
                    "--target-ms replaces the latency term: drop --latency-loss and --alpha 0"
                )
        if not self.target_weight > 0.0:
            raise InvalidSearchConfigError(f"the target weight must be > 0, got {self.target_weight}")

    @property
    def latency_aware(self) -> bool:
        """False for the latency-unaware baseline: `none`, or the paper's alpha = 0."""
        return self.form == "additive" or (self.form == "multiplicative" and self.alpha > 0.0)

    def resolved(self, fastest_ms: float, paper: bool = False) -> LossConfig:
        """This configuration with its defaults filled in for a LUT whose fastest architecture takes `fastest_ms`:
        the latency unit (from the LUT; the paper's 1 ms with `paper`) and the label smoothing
        (`DEFAULT_LABEL_SMOOTHING`; the paper's 0 with `paper`). Refuses, before training, a unit under which
        log(LAT) can be <= 0."""
        smoothing = self.label_smoothing
        if smoothing is None:
            smoothing = 0.0 if paper else DEFAULT_LABEL_SMOOTHING
        unit_ms = self.latency_unit_ms
        if unit_ms is None:
            unit_ms = 1.0 if paper else fastest_ms / FASTEST_ARCHITECTURE_UNITS
        resolved = dataclasses.replace(self, latency_unit_ms=unit_ms, label_smoothing=smoothing)
        if (
            self.form == "multiplicative"
            and self.latency_aware
            and self.target_ms is None
            and fastest_ms <= unit_ms
        ):
            raise LatencyLossUndefinedError(
                f"the fastest architecture in this LUT takes {fastest_ms:.3f} ms; the multiplicative loss "
                f"CE * alpha * log(LAT)^beta needs LAT > 1 unit ({unit_ms:g} ms) everywhere. Leave "
                "--latency-unit-ms and --paper-schedule out (the unit then follows the LUT), give a smaller unit, "
                "or use --latency-loss additive."
            )
        return resolved


def cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, config: LossConfig, reduction: str = "mean"
) -> torch.Tensor:
    """The search's cross-entropy, label-smoothed as the resolved `config` says."""
    if config.label_smoothing is None:
        raise ValueError("label smoothing is not resolved: call LossConfig.resolved(fastest_ms) first")
    return F.cross_entropy(logits, labels, reduction=reduction, label_smoothing=config.label_smoothing)


def search_loss(
    cross_entropy: torch.Tensor, expected_latency_ms: torch.Tensor, config: LossConfig
) -> torch.Tensor:
    """Combine the batch-mean cross-entropy and the batch-mean expected latency (both scalars) into one loss.

    `config` must be resolved (`LossConfig.resolved`) when its unit comes from the LUT."""
    if not config.latency_aware:
        return cross_entropy
    if config.target_ms is not None:
        return cross_entropy + config.target_weight * torch.abs(expected_latency_ms / config.target_ms - 1.0)
    if config.form == "multiplicative":
        if config.latency_unit_ms is None:
            raise ValueError("the latency unit is not resolved: call LossConfig.resolved(fastest_ms) first")
        latency_units = expected_latency_ms / config.latency_unit_ms
        return cross_entropy * config.alpha * torch.log(latency_units) ** config.beta
    return cross_entropy + config.lambda_per_ms * expected_latency_ms
