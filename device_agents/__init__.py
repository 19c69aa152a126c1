"""device_agents package."""
