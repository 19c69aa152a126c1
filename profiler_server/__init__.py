"""profiler_server: the latency LUT service (FastAPI + SQLAlchemy).

Kept free of imports: agents use `profiler_server.client` and `profiler_server.dev_tokens` without the server's
dependencies installed.
"""

__version__ = "0.1.0"
