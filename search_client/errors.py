"""The search client's typed exceptions: one tree, so callers (and the CLI) catch `SearchClientError` once.

Every error is raised with a message a user can act on; third-party failures (torch, onnx, onnxruntime, httpx)
are translated into one of these at the boundary with `raise ... from exc`.
"""

from __future__ import annotations

from collections.abc import Iterable


class SearchClientError(Exception):
    """Base class of every error the search client raises on purpose."""


class UnknownBlockError(SearchClientError, ValueError):
    """A block name that is not in the registry."""

    def __init__(self, name: str, valid: Iterable[str]) -> None:
        self.name = name
        self.valid = tuple(valid)
        super().__init__(f"unknown block {name!r}; valid blocks: {', '.join(self.valid)}")


class InvalidSpaceError(SearchClientError, ValueError):
    """Search-space parameters that cannot describe a network (bad resolution, width, class count...)."""


class InvalidArchitectureError(SearchClientError, ValueError):
    """An architecture that does not fit its search space (wrong length, malformed string or JSON)."""


class UnknownModelError(SearchClientError, KeyError):
    """A model name that is not in the zoo."""

    def __init__(self, name: str, valid: Iterable[str]) -> None:
        self.name = name
        self.valid = tuple(valid)
        super().__init__(name)

    def __str__(self) -> str:  # KeyError would otherwise print the repr of its argument only
        return f"unknown model {self.name!r}; valid models: {', '.join(self.valid)}"


class InvalidOpSpecError(SearchClientError, ValueError):
    """An op spec (see docs/contracts.md) with a missing or malformed field."""


class ExportError(SearchClientError):
    """ONNX export of an op or model failed."""


class MissingLutEntries(SearchClientError, KeyError):
    """A latency prediction needs LUT keys that the LUT does not have."""

    def __init__(self, missing_keys: Iterable[str]) -> None:
        self.missing_keys = tuple(missing_keys)
        super().__init__(self.missing_keys)

    def __str__(self) -> str:
        return f"{len(self.missing_keys)} LUT entries missing: {', '.join(self.missing_keys)}"


# --- search (dnas search / train / lut): added by the search-client area ---


class DataSpecError(SearchClientError, ValueError):
    """A `--data` spec that names no data set, or a data set whose files are missing or unreadable."""


class LatencyLossUndefinedError(SearchClientError, ValueError):
    """The multiplicative latency loss needs LAT > 1 ms for every architecture; this LUT allows less."""


class LutFormatError(SearchClientError, ValueError):
    """A LUT file or cache entry that is not a `GET /lut/{device}` body."""


class LutUnavailableError(SearchClientError):
    """The LUT server cannot be reached and no cached copy of the LUT exists."""


class CheckpointError(SearchClientError):
    """A checkpoint that cannot be read, or that belongs to a different search configuration."""


class InvalidSearchConfigError(SearchClientError, ValueError):
    """Search or training settings that cannot work together (e.g. a data split smaller than one batch)."""
