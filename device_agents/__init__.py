"""Device agents: measure ONNX ops on a device and report raw timings to the profiler server."""

from __future__ import annotations

AGENT_VERSION = "0.1.0"
