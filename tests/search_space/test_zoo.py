from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from fbnet_core.arch import Architecture
from fbnet_core.keys import op_key
from search_client.errors import UnknownModelError
from search_client.space.counting import count_model
from search_client.space.export import export_onnx, seeded_eval_op
from search_client.space.zoo import ZOO, FBNetEntry, ZooEntry, get_model, input_shape


def test_zoo_has_the_papers_models() -> None:
    assert list(ZOO) == [
        "fbnet_a",
        "fbnet_b",
        "fbnet_c",
        "fbnet_iphonex",
        "fbnet_s8",
        "fbnet_96_035_1",
        "mobilenetv2_100",
        "mobilenetv2_130",
        "mobilenetv2_140",
    ]


def test_unknown_model_lists_the_zoo() -> None:
    with pytest.raises(UnknownModelError, match="unknown model 'fbnet_z'; valid models: fbnet_a, fbnet_b"):
        get_model("fbnet_z")


@pytest.mark.parametrize("entry", ZOO.values(), ids=lambda e: e.name)
def test_forward_backward_shapes(entry: ZooEntry) -> None:
    torch.manual_seed(0)
    model = entry.build()
    # Batch 2 so BatchNorm can run in training mode.
    x = torch.randn(2, *input_shape(entry)[1:], requires_grad=True)
    logits = model(x)
    assert logits.shape == (2, 1000)
    logits.logsumexp(dim=1).mean().backward()
    assert torch.isfinite(logits).all()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("entry", ZOO.values(), ids=lambda e: e.name)
def test_whole_model_onnx_matches_torch(entry: ZooEntry) -> None:
    spec = entry.spec()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(export_onnx(spec), options, providers=["CPUExecutionProvider"])
    x = torch.randn(input_shape(entry), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = seeded_eval_op(spec)(x).numpy()
    got = session.run(["output"], {"input": x.numpy()})[0]
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert np.abs(expected).max() > 1e-3


def test_fbnet_entries_are_networks_of_the_space() -> None:
    entry = get_model("fbnet_b")
    assert isinstance(entry, FBNetEntry)
    assert entry.arch.blocks[10] == "k5_e1", "the paper's figure, not the released code's k5_e6"
    assert entry.spec()["kind"] == "network"
    assert op_key(entry.spec()).startswith("net.r224.")
    assert get_model("fbnet_a").params.head_channels == 1504
    assert get_model("fbnet_96_035_1").params.resolution == 96


# The paper's table (Wu et al., CVPR 2019, table 2), with these tolerances: 2% multiply-adds, 3% parameters (4% for MobileNetV2 1.0).
# FBNet-B's 4.5M parameters and MobileNetV2-1.4's 6.9M do not reproduce from any public definition and
# FBNet-C's 375M only to 385M: see docs/models.md.
REPRODUCIBLE = [
    ("fbnet_a", "madds", 0.02),
    ("fbnet_a", "params", 0.03),
    ("fbnet_b", "madds", 0.02),
    ("fbnet_c", "params", 0.03),
    ("mobilenetv2_100", "madds", 0.02),
    ("mobilenetv2_100", "params", 0.04),
    ("mobilenetv2_130", "madds", 0.02),
    ("mobilenetv2_130", "params", 0.03),
    ("mobilenetv2_140", "madds", 0.02),
]


@pytest.mark.parametrize(("name", "what", "tolerance"), REPRODUCIBLE)
def test_counts_reproduce_the_papers_table(name: str, what: str, tolerance: float) -> None:
    entry = get_model(name)
    assert entry.paper is not None
    counts = count_model(entry.build(), input_shape(entry))
    ours, paper = (
        (counts.madds, entry.paper.madds_m) if what == "madds" else (counts.params, entry.paper.params_m)
    )
    assert abs(ours / 1e6 - paper) / paper <= tolerance


def test_fbnet_c_madds_lie_between_the_paper_and_public_definitions() -> None:
    entry = get_model("fbnet_c")
    madds = count_model(entry.build(), input_shape(entry)).madds
    assert 375e6 <= madds <= 386e6


def test_changing_one_block_changes_the_count() -> None:
    # Guards against a counter that ignores the searchable layers.
    entry = get_model("fbnet_a")
    assert isinstance(entry, FBNetEntry)
    heavier = FBNetEntry("heavier", Architecture(("k5_e6",) + entry.arch.blocks[1:]), entry.params)
    shape = input_shape(entry)
    assert count_model(heavier.build(), shape).madds > count_model(entry.build(), shape).madds
