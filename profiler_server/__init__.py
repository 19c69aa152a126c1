"""profiler_server: the latency LUT service (FastAPI + SQLAlchemy)."""

__version__ = "0.1.0"
