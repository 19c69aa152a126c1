"""The per-invocation cost applied: each op counts its median less the fixed invocation cost, a network pays it
once, the search's latency table agrees, and a LUT without complete figures predicts raw sums."""

from __future__ import annotations

import pytest

from fbnet_core.arch import Architecture
from fbnet_core.keys import ops_for_architecture, ops_for_space
from fbnet_core.lut_costs import LutCosts
from fbnet_core.predict import predict_latency_us
from fbnet_core.space import fbnet_space
from search_client.lut.latency import latency_table_for_space
from search_client.search.budget import table_ms

SPACE = fbnet_space(resolution=16, width=0.5, num_classes=10, head_channels=128, small_input=True)
ARCH = Architecture(("k3_e1", "skip", "k5_e6", "k3_e3") * 5 + ("k5_e1_g2", "skip"))


def lut_body(with_overhead: bool = True) -> dict:
    """Distinct medians; a fixed cost of 2.5 us with every op, boundary overheads that differ per op."""
    entries = {}
    for index, op in enumerate(ops_for_space(SPACE)):
        entry: dict = {"median_us": 20.0 + index}
        if with_overhead:
            entry["invocation_overhead"] = {"us": 3.0 + 0.01 * index, "input_us": 2.0 + 0.01 * index,
                                            "output_us": 4.0 + 0.01 * index, "fixed_us": 2.5}  # fmt: skip
        entries[op.key] = entry
    return {"device": "d", "entries": entries}


def test_the_fixed_invocation_cost_is_counted_once_per_network() -> None:
    body = lut_body()
    entries = body["entries"]
    costs = LutCosts.from_body(body)
    keys = [op.key for op in ops_for_architecture(ARCH, SPACE)]
    raw_us = sum(entries[key]["median_us"] for key in keys)
    assert predict_latency_us(costs, ARCH, SPACE) == pytest.approx(raw_us - 2.5 * len(keys) + 2.5)
    assert predict_latency_us(costs.raw(), ARCH, SPACE) == pytest.approx(raw_us)  # raw figures stay available
    assert costs.describe()["prediction"].startswith("sum of (work scale x (median - fixed cost) - boundary share")
    assert (costs.describe()["boundary_share"], costs.describe()["work_scale"]) == (0.0, 1.0)  # not fitted: only the fixed cost is taken out
    assert (
        costs.overhead is not None
        and costs.overhead[keys[1]].us == entries[keys[1]]["invocation_overhead"]["us"]
    )


def test_an_op_cheaper_than_the_fixed_cost_adds_nothing_rather_than_a_negative_time() -> None:
    body = lut_body()
    first_key = next(iter(body["entries"]))
    body["entries"][first_key]["median_us"] = 1.0  # noise put the fixed cost above it
    assert LutCosts.from_body(body).in_network_us(first_key) == 0.0


def test_the_search_table_predicts_what_the_predictor_does() -> None:
    costs = LutCosts.from_body(lut_body())
    table = latency_table_for_space(SPACE, costs)
    assert table_ms(table, list(ARCH.blocks)) * 1000.0 == pytest.approx(
        predict_latency_us(costs, ARCH, SPACE)
    )
    all_skips = Architecture(("skip",) * 22)
    assert table_ms(table, list(all_skips.blocks)) * 1000.0 == pytest.approx(
        predict_latency_us(costs, all_skips, SPACE)
    )


def test_one_entry_without_an_overhead_figure_makes_every_prediction_a_raw_sum() -> None:
    body = lut_body()
    first_key = next(iter(body["entries"]))
    body["entries"][first_key]["invocation_overhead"] = None  # e.g. measured by an agent that does not probe
    costs = LutCosts.from_body(body)
    assert not costs.overhead_once and "1 of 105 entries have no fixed invocation cost" in costs.raw_reason
    expected = sum(body["entries"][op.key]["median_us"] for op in ops_for_architecture(ARCH, SPACE))
    assert predict_latency_us(costs, ARCH, SPACE) == pytest.approx(expected)
    assert predict_latency_us(
        LutCosts.from_body(lut_body(with_overhead=False)), ARCH, SPACE
    ) == pytest.approx(expected)


def test_a_plain_mapping_is_a_lut_without_overhead_figures() -> None:
    medians = {key: entry["median_us"] for key, entry in lut_body()["entries"].items()}
    assert predict_latency_us(medians, ARCH, SPACE) == pytest.approx(
        predict_latency_us(LutCosts(medians), ARCH, SPACE)
    )


def test_a_malformed_overhead_figure_is_a_lut_format_error() -> None:
    from fbnet_core.errors import LutFormatError

    body = lut_body()
    first_key = next(iter(body["entries"]))
    body["entries"][first_key]["invocation_overhead"] = {"us": "fast"}
    with pytest.raises(LutFormatError, match="invocation_overhead"):
        LutCosts.from_body(body)
