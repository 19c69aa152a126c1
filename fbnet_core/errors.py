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
    """A latency prediction needs LUT keys that the LUT does not have.

    `cause` (set where the space is known, see `space_match.py`) names the one space parameter that differs.
    """

    SHOWN_KEYS = 3  # a few keys say what is missing; all of them would fill the screen

    def __init__(self, missing_keys: Iterable[str], cause: str | None = None) -> None:
        self.missing_keys = tuple(missing_keys)
        self.cause = cause
        super().__init__(self.missing_keys)

    def __str__(self) -> str:
        shown = ", ".join(self.missing_keys[: self.SHOWN_KEYS])
        more = len(self.missing_keys) - self.SHOWN_KEYS
        listed = f"{shown} and {more} more" if more > 0 else shown
        entries = f"{len(self.missing_keys)} LUT entries missing: {listed}"
        return f"{self.cause} ({entries})" if self.cause else entries


class FormatError(FbnetLutError, ValueError):
    """A file that is not what docs/contracts.md says its format is."""


class UnknownFormatVersionError(FormatError):
    """A file written by a newer (or foreign) fbnet-lut: its `format_version` is one this version cannot read."""


class LutFormatError(FormatError):
    """A LUT file or cache entry that is not a `GET /lut/{device}` body."""


class FidelityInputError(FbnetLutError, ValueError):
    """Paired sequences that cannot be compared (different lengths, empty, non-positive measurements)."""
