"""`python -m device_agents` is the `device-agent` command."""

from __future__ import annotations

from device_agents.cli import main

main()
