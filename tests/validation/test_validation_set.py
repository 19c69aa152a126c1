"""The validation set: seeded random architectures, the zoo, the ops to measure, splits and the report."""

from __future__ import annotations

from collections import Counter

import pytest

from fbnet_core.blocks import CANDIDATES
from fbnet_core.keys import ops_for_architecture, ops_for_space, validate_spec
from fbnet_core.space import NUM_LAYERS, SpaceParams, build_space
from search_client.space.zoo import get_model
from search_client.validation.calibration import FIT, HOLDOUT
from search_client.validation.validate import (
    DEFAULT_ZOO,
    ValidationPoint,
    ValidationTimeout,
    build_report,
    compare,
    ops_to_measure,
    random_architectures,
    validation_models,
    with_splits,
)


def test_random_architectures_are_seeded_and_distinct():
    first = random_architectures(20, seed=5)
    assert first == random_architectures(20, seed=5)
    assert first != random_architectures(20, seed=6)
    assert len(set(first)) == 20


def test_random_architectures_draw_every_candidate_roughly_uniformly():
    counts = Counter(name for arch in random_architectures(200, seed=0) for name in arch.blocks)
    assert set(counts) == set(CANDIDATES)
    expected = 200 * NUM_LAYERS / len(CANDIDATES)
    assert all(abs(count - expected) < 0.15 * expected for count in counts.values())


def test_skewed_networks_lean_toward_cheap_or_expensive_blocks():
    cheap = Counter(name for arch in random_architectures(40, seed=0, skew="cheap") for name in arch.blocks)
    expensive = Counter(name for arch in random_architectures(40, seed=0, skew="expensive") for name in arch.blocks)
    wide = ("k3_e6", "k5_e6")
    assert cheap["skip"] > 4 * expensive["skip"]
    assert sum(expensive[name] for name in wide) > 4 * sum(cheap[name] for name in wide)
    assert random_architectures(5, seed=0, skew="cheap") != random_architectures(5, seed=0)


def test_a_small_input_space_has_its_random_and_skewed_networks_and_no_zoo():
    params = SpaceParams(16, width=0.5, num_classes=10, head_channels=128, small_input=True)
    models = validation_models(2, seed=0, params=params, skewed=2)
    assert [(model.name, model.kind) for model in models] == [
        ("random_000", "random"),
        ("random_001", "random"),
        ("cheap_000", "cheap"),
        ("cheap_001", "cheap"),
        ("expensive_000", "expensive"),
        ("expensive_001", "expensive"),
    ]
    assert all(model.params == params for model in models)


def test_the_set_is_the_zoo_then_the_random_networks_as_network_ops():
    models = validation_models(3, seed=0, resolution=64)
    assert [model.name for model in models] == [*DEFAULT_ZOO, "random_000", "random_001", "random_002"]
    for model in models:
        spec = validate_spec(model.network.spec)
        assert spec["input_shape"] == [1, 3, 64, 64]
    kinds = {model.network.spec["kind"] for model in models}
    assert kinds == {"network", "mobilenetv2"}
    mobilenet = models[DEFAULT_ZOO.index("mobilenetv2_100")]
    assert mobilenet.arch is None and mobilenet.block_ops() == []
    # FBNet-A keeps its 1504-wide head at any resolution.
    fbnet_a = models[0]
    assert fbnet_a.params is not None and fbnet_a.params.head_channels == 1504


def test_in_a_narrow_10_class_space_the_zoo_is_rebuilt_in_it_and_needs_no_block_outside_its_lut():
    params = SpaceParams(224, width=0.25, num_classes=10, head_channels=64, small_input=False)
    models = validation_models(2, seed=0, params=params)
    assert [model.name for model in models] == ["fbnet_a", "fbnet_b", "fbnet_c", "random_000", "random_001"]
    assert all(model.params == params for model in models)  # no width-1.0, 1000-class zoo network
    assert models[0].arch == get_model("fbnet_a").arch
    space_keys = {op.key for op in ops_for_space(build_space(params))}
    block_keys = {op.key for model in models for op in model.block_ops()}
    assert block_keys <= space_keys


def test_ops_to_measure_are_unique_and_cover_every_prediction():
    models = validation_models(4, seed=1, resolution=32)
    ops = ops_to_measure(models)
    keys = [op.key for op in ops]
    assert len(keys) == len(set(keys))
    for model in models:
        assert model.network.key in keys
        if model.arch is not None and model.params is not None:
            assert {op.key for op in ops_for_architecture(model.arch, build_space(model.params))} <= set(keys)


def test_compare_sums_the_blocks_and_reads_the_network_entry():
    models = validation_models(1, seed=0, resolution=32, zoo_names=("fbnet_a", "mobilenetv2_100"))
    lut = {op.key: 10.0 for op in ops_to_measure(models)}
    lut[models[0].network.key] = 500.0
    points = compare(models, lut)
    expected_blocks = len(ops_for_architecture(models[0].arch, build_space(models[0].params)))
    assert points[0].predicted_us == pytest.approx(10.0 * expected_blocks)
    assert points[0].measured_us == 500.0
    assert points[1].predicted_us is None  # MobileNetV2 is outside the space


def test_compare_lists_every_missing_entry():
    models = validation_models(1, seed=0, resolution=32, zoo_names=())
    lut = {op.key: 10.0 for op in ops_to_measure(models)}
    dropped = sorted(lut)[:2]
    for key in dropped:
        del lut[key]
    with pytest.raises(ValidationTimeout) as caught:
        compare(models, lut)
    assert sorted(caught.value.missing_keys) == dropped


def _point(name: str, kind: str, predicted: float | None, measured: float) -> ValidationPoint:
    by_kind = None if predicted is None else {"fixed": 0.0, "e1": predicted, "e3": 0.0, "e6": 0.0}
    return ValidationPoint(name, kind, f"net.{name}", predicted, measured, None, by_kind)  # type: ignore[arg-type]


def test_splits_hold_out_the_zoo_and_never_overlap():
    points = [_point("fbnet_a", "zoo", 95.0, 100.0), _point("mobilenetv2_100", "zoo", None, 80.0)]
    points += [_point(f"random_{i:03d}", "random", 90.0 + i, 100.0 + 2 * i) for i in range(10)]
    split = with_splits(points, 0.5, seed=0)
    by_name = {point.name: point.split for point in split}
    assert by_name["fbnet_a"] == HOLDOUT
    assert by_name["mobilenetv2_100"] is None
    randoms = [point for point in split if point.kind == "random"]
    assert sum(point.split == FIT for point in randoms) == 5
    assert sum(point.split == HOLDOUT for point in randoms) == 5


def test_report_judges_the_calibration_on_held_out_networks_only():
    # measured = 1.1 * predicted exactly for the random networks; the zoo network is off the line.
    points = [_point(f"random_{i:03d}", "random", 1000.0 + 100 * i, 1100.0 + 110 * i) for i in range(8)]
    points.append(_point("fbnet_a", "zoo", 1000.0, 1000.0))
    report = build_report(with_splits(points, 0.5, seed=0), calibrate=True)
    assert report.calibration is not None
    assert report.calibration.calibration.to_json()["kind"] == "linear"  # 4 fit networks: too few per kind
    assert report.calibration.calibration.to_json()["scale"] == pytest.approx(1.1)
    assert report.calibration.calibration.fit_count == 4
    assert report.raw.count == 9
    assert report.raw_holdout is not None and report.calibrated_holdout is not None
    assert report.raw_holdout.count == report.calibrated_holdout.count == 5
    # 4 held-out randoms now exact, the zoo network 10 % too slow: MAPE (0 * 4 + 10) / 5.
    assert report.calibrated_holdout.mape_pct == pytest.approx(2.0)
    assert report.raw_holdout.mape_pct == pytest.approx(100 / 11 * 4 / 5)


def test_report_gives_each_kind_and_the_raw_sum_beside_the_prediction():
    from dataclasses import replace

    points = [
        replace(_point(f"random_{i:03d}", "random", 1000.0 + 10 * i, 1000.0 + 10 * i), predicted_raw_us=1200.0 + i)
        for i in range(3)
    ] + [replace(_point(f"cheap_{i:03d}", "cheap", 400.0 + i, 440.0 + i), predicted_raw_us=600.0) for i in range(2)]
    report = build_report(points, calibrate=False)
    assert set(report.raw_by_kind) == {"random", "cheap"}
    assert report.raw_by_kind["random"].mape_pct == pytest.approx(0.0)
    assert report.raw_by_kind["cheap"].mean_signed_error_pct < -8.0  # 400 for 440: 9 % under
    assert report.plain_sum is not None and report.plain_sum.count == 5
    assert report.plain_sum_by_kind["cheap"].mean_signed_error_pct > 30.0
    # Where the prediction is the plain sum (no overhead figures), it is not reported twice.
    plain = [replace(point, predicted_raw_us=point.predicted_us) for point in points]
    assert build_report(plain, calibrate=False).plain_sum is None
