"""Sub-command groups of `dnas`, one module per area; each exposes `register(app)`."""
