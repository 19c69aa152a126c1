"""Alembic migrations (the only way tables are created); run them with `profiler-server migrate`."""
