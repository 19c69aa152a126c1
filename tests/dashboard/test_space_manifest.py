"""fbnet_core.space_manifest: the body of PUT /spaces/{name} built from the search space's own keys."""

from __future__ import annotations

from fbnet_core.blocks import CANDIDATES, is_identity
from fbnet_core.keys import fixed_ops, ops_for_space
from fbnet_core.space import fbnet_space
from fbnet_core.space_manifest import space_manifest, space_name


def test_manifest_has_a_key_per_candidate_and_null_for_identity_skips():
    space = fbnet_space(resolution=96, small_input=False)
    manifest = space_manifest(space)
    assert manifest["candidates"] == list(CANDIDATES)
    assert len(manifest["layers"]) == len(space.layers) == 22
    for layer, keys in zip(space.layers, manifest["layers"], strict=True):
        assert len(keys) == 9
        for name, key in zip(CANDIDATES, keys, strict=True):
            identity = is_identity(name, layer.in_channels, layer.out_channels, layer.stride)
            assert (key is None) == identity
            assert key is None or key.startswith(f"blk.{name}.c{layer.in_channels}.o{layer.out_channels}.")
    assert manifest["fixed_keys"] == [op.key for op in fixed_ops(space)]
    listed = {k for layer in manifest["layers"] for k in layer if k} | set(manifest["fixed_keys"])
    assert listed == {op.key for op in ops_for_space(space)}  # every op the space needs, nothing else
    assert manifest["params"]["resolution"] == 96


def test_space_names_differ_by_parameters_and_are_url_safe():
    names = {space_name(fbnet_space(**kw).params) for kw in
             ({}, {"resolution": 96}, {"width": 0.35}, {"num_classes": 10, "small_input": True})}  # fmt: skip
    assert len(names) == 4
    assert "fbnet-r224-w1.0-c10-h1984" in names
    assert all(n.replace("-", "").replace(".", "").isalnum() for n in names)
