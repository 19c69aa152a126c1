"""Measurement backends, one file each; `load_backend` builds one by name and imports only its runtime."""

from __future__ import annotations

from device_agents.backends.base import Backend, OpInput, Runner, RuntimeInfo

BACKEND_NAMES = ("onnxruntime", "torch", "adb")

__all__ = ["BACKEND_NAMES", "Backend", "OpInput", "Runner", "RuntimeInfo"]
