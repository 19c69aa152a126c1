"""The agent's ONNX cache: each model downloaded once, the cache bounded in size (least recently used first)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from device_agents.onnx_cache import OnnxCache


def test_the_cache_stays_under_its_bound_dropping_the_least_recently_used(tmp_path: Path):
    models = {f"k{i}": bytes([i]) * 1000 for i in range(5)}
    sha = {key: hashlib.sha256(content).hexdigest() for key, content in models.items()}
    fetched: list[str] = []

    def fetch(key: str, model_format: str) -> bytes:
        fetched.append(key)
        return models[key]

    cache = OnnxCache(tmp_path, fetch, max_bytes=2500)  # room for two models
    for i, key in enumerate(["k0", "k1"]):
        path = cache.path_for(key, sha[key])
        os.utime(path, (1_000_000 + i, 1_000_000 + i))  # k0 older than k1
    cache.path_for("k0", sha["k0"])  # used again: now the most recent
    cache.path_for("k2", sha["k2"])
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == sorted(f"{sha[k]}.onnx" for k in ("k0", "k2"))
    assert sum(p.stat().st_size for p in tmp_path.glob("*.onnx")) <= 2500
    assert fetched == ["k0", "k1", "k2"]  # k0's second use came from the cache


def test_a_model_larger_than_the_bound_is_still_kept_for_its_measurement(tmp_path: Path):
    content = b"x" * 5000
    sha = hashlib.sha256(content).hexdigest()
    path = OnnxCache(tmp_path, lambda _key, _format: content, max_bytes=1000).path_for("big", sha)
    assert path.read_bytes() == content
