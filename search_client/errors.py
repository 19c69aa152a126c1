"""The search client's typed exceptions; they derive from `fbnet_core.errors.FbnetLutError`, so callers (and the
CLI) catch that once, for the shared vocabulary's errors and these alike.

Every error is raised with a message a user can act on; third-party failures (torch, onnx, onnxruntime, httpx)
are translated into one of these at the boundary with `raise ... from exc`.
"""

from __future__ import annotations

from collections.abc import Iterable

from fbnet_core.errors import FbnetLutError


class SearchClientError(FbnetLutError):
    """Base class of every error the search client raises on purpose."""


class UnknownModelError(SearchClientError, KeyError):
    """A model name that is not in the zoo."""

    def __init__(self, name: str, valid: Iterable[str]) -> None:
        self.name = name
        self.valid = tuple(valid)
        super().__init__(name)

    def __str__(self) -> str:  # KeyError would otherwise print the repr of its argument only
        return f"unknown model {self.name!r}; valid models: {', '.join(self.valid)}"


class ExportError(SearchClientError):
    """ONNX export of an op or model failed."""


class DataSpecError(SearchClientError, ValueError):
    """A `--data` spec that names no data set, or a data set whose files are missing or unreadable."""


class LatencyLossUndefinedError(SearchClientError, ValueError):
    """The multiplicative latency loss needs LAT > 1 ms for every architecture; this LUT allows less."""


class LutUnavailableError(SearchClientError):
    """The LUT server cannot be reached and no cached copy of the LUT exists."""


class CheckpointError(SearchClientError):
    """A checkpoint that cannot be read, or that belongs to a different search configuration."""


class InvalidSearchConfigError(SearchClientError, ValueError):
    """Search or training settings that cannot work together (e.g. a data split smaller than one batch)."""


class CompilerUnavailableError(SearchClientError):
    """The compiler of a model format (ExecuTorch, the LiteRT converter) is not installed where it is looked for."""


class FormatMismatchError(SearchClientError, ValueError):
    """A model format asked for that is not the one the device registered (its agent is leased that one)."""


class UnknownDeviceError(SearchClientError, LookupError):
    """A device no agent has registered on the server (yet)."""
