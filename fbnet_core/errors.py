"""The shared vocabulary's typed exceptions, and the base every part's own exception tree derives from.

Each error carries a message a user can act on; a command line catches `FbnetLutError` once and prints it.
"""

from __future__ import annotations

from collections.abc import Iterable


class FbnetLutError(Exception):
    """Base class of every error fbnet-lut raises on purpose (the search client's and the agent's derive from it)."""


class UnknownBlockError(FbnetLutError, ValueError):
    """A block name that is not in the registry."""

    def __init__(self, name: str, valid: Iterable[str]) -> None:
        self.name = name
        self.valid = tuple(valid)
        super().__init__(f"unknown block {name!r}; valid blocks: {', '.join(self.valid)}")


class InvalidSpaceError(FbnetLutError, ValueError):
    """Search-space parameters that cannot describe a network (bad resolution, width, class count...)."""


class InvalidArchitectureError(FbnetLutError, ValueError):
    """An architecture that does not fit its search space (wrong length, malformed string or JSON)."""


class InvalidOpSpecError(FbnetLutError, ValueError):
    """An op spec (see docs/contracts.md) with a missing or malformed field."""


class MissingLutEntries(FbnetLutError, KeyError):
    """A latency prediction needs LUT keys that the LUT does not have."""

    def __init__(self, missing_keys: Iterable[str]) -> None:
        self.missing_keys = tuple(missing_keys)
        super().__init__(self.missing_keys)

    def __str__(self) -> str:
        return f"{len(self.missing_keys)} LUT entries missing: {', '.join(self.missing_keys)}"


class FormatError(FbnetLutError, ValueError):
    """A file that is not what docs/contracts.md says its format is."""


class UnknownFormatVersionError(FormatError):
    """A file written by a newer (or foreign) fbnet-lut: its `format_version` is one this version cannot read."""


class LutFormatError(FormatError):
    """A LUT file or cache entry that is not a `GET /lut/{device}` body."""


class FidelityInputError(FbnetLutError, ValueError):
    """Paired sequences that cannot be compared (different lengths, empty, non-positive measurements)."""
