"""search_client: the DNAS search client (`dnas`): space/, search/, lut/, validation/, commands/ (the CLI)."""
