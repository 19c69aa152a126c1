"""LUT fidelity validation: measure whole networks on a device and compare them with the LUT's sum of blocks.

The validation set is the zoo (FBNet-A/B/C and MobileNetV2 1.0; ImageNet stride schedules only) plus N random architectures
of the FBNet space, uniform over the 9 candidates per layer and seeded, and optionally networks skewed toward cheap
blocks (skips, expansion 1) and toward expensive ones (expansion 6): the regions a latency-aware search ends in. Each network becomes one op of kind `network` (or
`mobilenetv2`); it is uploaded, queued and measured by the device's agent like any block, so prediction and
measurement use the same runtime, settings and statistic (the LUT's median). MobileNetV2 is outside the FBNet
space: it has no block-sum prediction and is measured only (a point for the trade-off plot, not for fidelity).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from fbnet_core.arch import Architecture
from fbnet_core.arch_draw import random_architectures
from fbnet_core.client import ProfilerClient
from fbnet_core.fidelity import FidelitySummary, summarize
from fbnet_core.keys import Op, make_op, mobilenetv2_spec, network_spec, ops_for_architecture
from fbnet_core.lut_costs import LutCosts, as_lut_costs
from fbnet_core.network_fit import fit_architectures, fit_network_costs, fit_ops
from fbnet_core.predict import latency_breakdown_us, predict_latency_us
from fbnet_core.space import IMAGENET_CLASSES, SpaceParams, build_space
from fbnet_core.space_manifest import space_manifest, space_name
from search_client.errors import SearchClientError
from search_client.lut.client import Waiter, request_lut, wait_for_entries
from search_client.space.zoo import MobileNetV2Entry, get_model
from search_client.validation.calibration import DEFAULT_FIT_FRACTION, FIT, HOLDOUT, split_names
from search_client.validation.calibration_choice import CalibrationChoice, FitNetwork, choose_calibration
from search_client.validation.calibration_kinds import FIXED, latency_by_kind_us

ModelKind = Literal["zoo", "random", "cheap", "expensive", "searched"]
DEFAULT_ZOO = ("fbnet_a", "fbnet_b", "fbnet_c", "mobilenetv2_100")
LATENCY_FIELD = "median_us"  # the statistic the search uses; validation compares like with like


class ValidationTimeout(SearchClientError):
    """The device did not measure every op in time (no agent running, or ops that fail on it)."""

    def __init__(self, missing_keys: Sequence[str]) -> None:
        self.missing_keys = tuple(missing_keys)
        super().__init__(
            f"{len(self.missing_keys)} ops still unmeasured (is an agent running for this device?): "
            + ", ".join(self.missing_keys[:10])
            + (" ..." if len(self.missing_keys) > 10 else "")
        )


@dataclass(frozen=True)
class ValidationModel:
    """One network of the validation set: the whole-network op, and its architecture when it is in the space."""

    name: str
    kind: ModelKind
    network: Op
    arch: Architecture | None = None
    params: SpaceParams | None = None

    def block_ops(self) -> list[Op]:
        """The LUT entries the prediction sums (none for a network outside the space)."""
        if self.arch is None or self.params is None:
            return []
        return ops_for_architecture(self.arch, build_space(self.params))

    def predicted_us(self, lut: Mapping[str, float] | LutCosts) -> float | None:
        if self.arch is None or self.params is None:
            return None
        return predict_latency_us(lut, self.arch, build_space(self.params))

    def predicted_by_kind_us(self, lut: Mapping[str, float] | LutCosts) -> dict[str, float] | None:
        """The prediction's terms summed per op kind (what a per-kind calibration scales); the overhead a
        network pays once counts with the fixed ops."""
        if self.arch is None or self.params is None:
            return None
        breakdown = latency_breakdown_us(lut, self.arch, build_space(self.params))
        ops = self.block_ops()
        sums = latency_by_kind_us(
            [(op, latency_us) for op, (_, latency_us) in zip(ops, breakdown, strict=True)]
        )
        sums[FIXED] += as_lut_costs(lut).network_once_us(breakdown[0][0], breakdown[-1][0])
        return sums


@dataclass(frozen=True)
class ValidationPoint:
    """What `POST /devices/{name}/validations` stores per network; `split` is set when a calibration is fitted."""

    name: str
    kind: ModelKind
    key: str
    predicted_us: float | None
    measured_us: float
    split: str | None = None
    predicted_by_kind_us: dict[str, float] | None = None  # not stored on the server: validation.json only
    round_us: tuple[float, ...] = ()  # each round's median when measured in rounds (validation.json only)
    predicted_raw_us: float | None = None  # the plain sum of medians (validation.json only)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "key": self.key,
            "predicted_us": self.predicted_us,
            "measured_us": self.measured_us,
            "split": self.split,
            "predicted_by_kind_us": self.predicted_by_kind_us,
            "round_us": list(self.round_us),
            "predicted_raw_us": self.predicted_raw_us,
        }

    def fit_network(self) -> FitNetwork:
        if self.predicted_us is None or self.predicted_by_kind_us is None:
            raise SearchClientError(f"{self.name} has no prediction to calibrate")
        return FitNetwork(self.predicted_us, self.predicted_by_kind_us, self.measured_us)


def _is_zoo_space(params: SpaceParams) -> bool:
    """The zoo's own setting: ImageNet's classes at width 1.0, where its networks are the published ones."""
    return params.num_classes == IMAGENET_CLASSES and params.width == 1.0


def _zoo_model(name: str, params: SpaceParams) -> ValidationModel | None:
    """Zoo network `name` for the validated space `params`, or None where it has no place in it.

    In the zoo's own setting the networks are the published ones (FBNet-A keeps its 1504-wide head; only the
    resolution moves). In any other space (another width or class count) each FBNet's architecture is rebuilt in
    that space, so that its prediction sums only the space's own LUT entries and validating a space never queues
    width-1.0, 1000-class blocks nobody asked for; MobileNetV2, outside the FBNet space, is left out there."""
    entry = get_model(name)
    if isinstance(entry, MobileNetV2Entry):
        if not _is_zoo_space(params):
            return None
        spec = mobilenetv2_spec(entry.width, entry.num_classes, params.resolution)
        return ValidationModel(name, "zoo", make_op(spec))
    own = replace(entry.params, resolution=params.resolution) if _is_zoo_space(params) else params
    return ValidationModel(name, "zoo", make_op(network_spec(entry.arch, own)), entry.arch, own)


def validation_models(
    count: int,
    seed: int,
    resolution: int = 224,
    zoo_names: Sequence[str] = DEFAULT_ZOO,
    params: SpaceParams | None = None,
    skewed: int = 0,
) -> list[ValidationModel]:
    """The zoo networks (ImageNet stride schedules only; see `_zoo_model` for their form in a space of another
    width or class count) followed by `count` random architectures of the FBNet space `params` (default: the
    ImageNet space at `resolution`) and `skewed` networks skewed toward cheap blocks and as many toward expensive
    ones."""
    params = params or SpaceParams(resolution, num_classes=IMAGENET_CLASSES, small_input=False)
    build_space(params)  # fails early, with the space's own message, on a resolution the space cannot take
    zoo = [] if params.small_input else [_zoo_model(name, params) for name in zoo_names]
    models = [model for model in zoo if model is not None]
    drawn: list[tuple[str, ModelKind, list[Architecture]]] = [
        ("random", "random", random_architectures(count, seed)),
        ("cheap", "cheap", random_architectures(skewed, seed, "cheap")),
        ("expensive", "expensive", random_architectures(skewed, seed, "expensive")),
    ]
    for prefix, kind, architectures in drawn:
        for index, arch in enumerate(architectures):
            network = make_op(network_spec(arch, params))
            models.append(ValidationModel(f"{prefix}_{index:03d}", kind, network, arch, params))
    return models


def ops_to_measure(models: Sequence[ValidationModel]) -> list[Op]:
    """Every op the validation needs, once: the whole networks and the blocks their predictions sum."""
    unique: dict[str, Op] = {}
    for model in models:
        unique[model.network.key] = model.network
        unique.update((op.key, op) for op in model.block_ops())
    return list(unique.values())


def medians_us(entries: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    return {key: float(entry[LATENCY_FIELD]) for key, entry in entries.items()}


def compare(
    models: Sequence[ValidationModel],
    lut: Mapping[str, float] | LutCosts,
    round_us: Mapping[str, Sequence[float]] | None = None,
) -> list[ValidationPoint]:
    """One point per network: its LUT prediction (None outside the space; the overhead counted once per network
    where the LUT has overhead figures, lut_costs.py), the raw sum of medians, and its measured latency - the median
    of its rounds' medians where `round_us` has them, else its LUT entry's."""
    costs = as_lut_costs(lut)
    missing = sorted({op.key for op in ops_to_measure(models)} - set(costs.median_us))
    if missing:
        raise ValidationTimeout(missing)
    rounds = round_us or {}
    return [
        ValidationPoint(
            model.name,
            model.kind,
            model.network.key,
            model.predicted_us(costs),
            statistics.median(rounds[key]) if (key := model.network.key) in rounds else costs.median_us[key],
            predicted_by_kind_us=model.predicted_by_kind_us(costs),
            round_us=tuple(rounds.get(key, ())),
            predicted_raw_us=model.predicted_us(costs.raw()),
        )
        for model in models
    ]


def measure_and_compare(
    client: ProfilerClient,
    device: str,
    models: Sequence[ValidationModel],
    timeout_s: float,
    poll_s: float = 2.0,
    wait: Waiter = wait_for_entries,
    rounds: int = 1,
    on_round: Callable[[int], None] | None = None,
    on_costs: Callable[[LutCosts], None] | None = None,
) -> list[ValidationPoint]:
    """Upload and queue whatever the device has not measured, wait for its agent, then compare.

    With `rounds` > 1 the whole networks are measured that many times in all, round after round, and each
    network's latency is the median of its rounds': a network's own run-to-run spread, not the LUT, is what
    limits the ranking on a noisy machine (docs/results/README.md, LUT fidelity). `wait` is how to wait for the agent (the CLI's
    draws a progress bar), `on_round(r)` is told when round r >= 2 starts, `on_costs` the LUT's cost model once
    it is known. Needs the admin token (uploading ops, queueing jobs)."""
    if rounds < 1:
        raise SearchClientError(f"rounds must be at least 1, got {rounds}")
    # The work scale and the boundary share (fbnet_core/network_fit.py) are fitted in
    # the space most of the networks are in (the zoo's FBNet-C has a head of its own) and holds for the device:
    # its five fit networks and their blocks are measured with the set, never as points of it.
    spaces = Counter(model.params for model in models if model.params is not None)
    fit_space = build_space(spaces.most_common(1)[0][0]) if spaces else None
    fit_models = (
        []
        if fit_space is None
        else [
            ValidationModel(f"fit_{index}", "random", network, arch, fit_space.params)
            for index, (arch, network) in enumerate(
                zip(fit_architectures(), fit_ops(fit_space.params), strict=True)
            )
        ]
    )
    ops = ops_to_measure([*models, *fit_models])
    request_lut(client, device, ops)
    keys = [op.key for op in ops]
    missing = wait(client, device, keys, timeout_s, poll_s)
    if missing:
        raise ValidationTimeout(missing)
    costs = LutCosts.from_entries(client.get_lut(device, keys=keys).entries)
    if fit_space is not None:
        costs = fit_network_costs(costs, fit_space)
    if on_costs is not None:
        on_costs(costs)
    if rounds == 1:
        return compare(models, costs)
    network_keys = [model.network.key for model in models]
    round_us = measure_rounds(client, device, network_keys, rounds - 1, timeout_s, poll_s, wait, on_round)
    return compare(models, costs, round_us)


def measure_rounds(
    client: ProfilerClient,
    device: str,
    keys: Sequence[str],
    extra_rounds: int,
    timeout_s: float,
    poll_s: float = 2.0,
    wait: Waiter = wait_for_entries,
    on_round: Callable[[int], None] | None = None,
) -> dict[str, list[float]]:
    """Each key's current LUT median followed by `extra_rounds` new ones: every round queues all keys for
    re-measurement and waits until each entry holds a newer result than the round before (`on_round(r)` is told
    when round r starts, the current entries being round 1)."""
    unique = list(dict.fromkeys(keys))
    entries = client.get_lut(device, keys=unique).entries
    round_us = {key: [float(entries[key][LATENCY_FIELD])] for key in unique}
    for round_number in range(2, extra_rounds + 2):
        if on_round is not None:
            on_round(round_number)
        stale = {key: entries[key]["result_id"] for key in unique}
        client.create_jobs(device, unique, remeasure=True)
        missing = wait(client, device, unique, timeout_s, poll_s, stale=stale)
        if missing:
            raise ValidationTimeout(missing)
        entries = client.get_lut(device, keys=unique).entries
        for key in unique:
            round_us[key].append(float(entries[key][LATENCY_FIELD]))
    return round_us


def round_spread_pct(points: Sequence[ValidationPoint]) -> list[float]:
    """Per network measured in rounds: (slowest - fastest round) / median, in percent."""
    return [
        100.0 * (max(p.round_us) - min(p.round_us)) / statistics.median(p.round_us)
        for p in points
        if len(p.round_us) > 1
    ]


def with_splits(
    points: Sequence[ValidationPoint], fit_fraction: float = DEFAULT_FIT_FRACTION, seed: int = 0
) -> list[ValidationPoint]:
    """Random architectures split into fit / holdout (seeded); the zoo is always held out; a network
    without a prediction (MobileNetV2) takes no part."""
    randoms = [point.name for point in points if point.kind == "random" and point.predicted_us is not None]
    fit = set(split_names(randoms, fit_fraction, seed).fit)
    return [
        point if point.predicted_us is None else replace(point, split=FIT if point.name in fit else HOLDOUT)
        for point in points
    ]


@dataclass(frozen=True)
class ValidationReport:
    """The LUT's uncalibrated prediction (`raw`) over every predicted network and per kind of network (random,
    cheap, expensive, zoo); the plain sum of medians likewise where the prediction counts the overhead once
    (`plain_sum`); with a calibration, the raw prediction and the calibrated one on the holdout."""

    raw: FidelitySummary
    calibration: CalibrationChoice | None = None
    raw_holdout: FidelitySummary | None = None
    calibrated_holdout: FidelitySummary | None = None
    raw_by_kind: dict[str, FidelitySummary] = field(default_factory=dict)
    plain_sum: FidelitySummary | None = None
    plain_sum_by_kind: dict[str, FidelitySummary] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "raw": self.raw.to_json(),
            "calibration": self.calibration.to_json() if self.calibration else None,
            "raw_holdout": self.raw_holdout.to_json() if self.raw_holdout else None,
            "calibrated_holdout": self.calibrated_holdout.to_json() if self.calibrated_holdout else None,
            "raw_by_kind": {kind: summary.to_json() for kind, summary in self.raw_by_kind.items()},
            "plain_sum": self.plain_sum.to_json() if self.plain_sum else None,
            "plain_sum_by_kind": {
                kind: summary.to_json() for kind, summary in self.plain_sum_by_kind.items()
            },
        }


def _predicted(points: Sequence[ValidationPoint], split: str | None = None) -> list[ValidationPoint]:
    return [p for p in points if p.predicted_us is not None and (split is None or p.split == split)]


def _pairs(points: Sequence[ValidationPoint]) -> tuple[list[float], list[float]]:
    return [p.predicted_us for p in points if p.predicted_us is not None], [p.measured_us for p in points]


def calibrated_us(choice: CalibrationChoice, points: Sequence[ValidationPoint]) -> dict[str, float]:
    """Each point's calibrated prediction, by network name."""
    networks = {point.name: point.fit_network() for point in points}
    return {name: choice.calibrate_us(n.predicted_us, n.by_kind_us) for name, n in networks.items()}


def _by_kind(points: Sequence[ValidationPoint], plain: bool) -> dict[str, FidelitySummary]:
    """Figures per kind of network, for the kinds with at least two networks."""
    kinds = dict.fromkeys(point.kind for point in points)
    summaries = {}
    for kind in kinds:
        chosen = [point for point in points if point.kind == kind]
        if len(chosen) >= 2:
            predicted = [p.predicted_raw_us if plain else p.predicted_us for p in chosen]
            summaries[kind] = summarize(predicted, [p.measured_us for p in chosen])  # type: ignore[arg-type]
    return summaries


def build_report(points: Sequence[ValidationPoint], calibrate: bool) -> ValidationReport:
    """Fidelity of the LUT's prediction, overall and per kind (and of the plain sum where they differ); with
    `calibrate`, a calibration chosen and fitted on the fit split only (the points must carry splits, see
    `with_splits`; calibration_choice.py) and judged on the holdout split only."""
    predicted_points = _predicted(points)
    plain = None
    plain_by_kind: dict[str, FidelitySummary] = {}
    if any(p.predicted_raw_us not in (None, p.predicted_us) for p in predicted_points):
        plain_pairs = (
            [p.predicted_raw_us for p in predicted_points],
            [p.measured_us for p in predicted_points],
        )
        plain = summarize(*plain_pairs)  # type: ignore[arg-type]
        plain_by_kind = _by_kind(predicted_points, plain=True)
    report = ValidationReport(
        summarize(*_pairs(predicted_points)),
        raw_by_kind=_by_kind(predicted_points, plain=False),
        plain_sum=plain,
        plain_sum_by_kind=plain_by_kind,
    )
    if not calibrate:
        return report
    choice = choose_calibration([p.fit_network() for p in _predicted(points, FIT)])
    held_out = _predicted(points, HOLDOUT)
    predicted, measured = _pairs(held_out)
    calibrated = list(calibrated_us(choice, held_out).values())
    return replace(
        report,
        calibration=choice,
        raw_holdout=summarize(predicted, measured),
        calibrated_holdout=summarize(calibrated, measured),
    )


def calibration_json(report: ValidationReport) -> dict[str, Any] | None:
    """The calibration as the server stores it, with its held-out figures: the server summarises the raw
    prediction per split itself, but cannot recompute a calibrated one (it does not store the per-kind terms)."""
    if report.calibration is None or report.calibrated_holdout is None:
        return None
    return {**report.calibration.to_json(), "calibrated_holdout": report.calibrated_holdout.to_json()}


def server_body(
    points: Sequence[ValidationPoint], label: str, space: str, calibration: dict[str, Any] | None
) -> dict[str, Any]:
    """The body of `POST /devices/{name}/validations`; networks without a prediction are not fidelity points."""
    server_fields = ("name", "kind", "key", "predicted_us", "measured_us", "split")
    return {
        "space": space,
        "label": label,
        "points": [
            {field: point.to_json()[field] for field in server_fields}
            for point in points
            if point.predicted_us is not None
        ],
        "calibration": calibration,
    }


def post_run(
    client: ProfilerClient,
    device: str,
    params: SpaceParams,
    label: str,
    points: Sequence[ValidationPoint],
    calibration: dict[str, Any] | None,
    name: str | None = None,
) -> dict[str, Any]:
    """Store the run on the server (admin token), under the random networks' search space (`name`, default:
    derived from `params`), which is put (created or refreshed: idempotent) first so the dashboard can show the
    run with that space's coverage."""
    name = name or space_name(params)
    client.put_space(name, space_manifest(build_space(params)))
    return client.post_validation(device, server_body(points, label, name, calibration))
