"""profiler_server package."""
