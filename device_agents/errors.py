"""The agent's exception tree: third-party errors are translated into these once, at the boundary."""

from __future__ import annotations

from fbnet_core.errors import FbnetLutError


class AgentError(FbnetLutError):
    """Base of every error the agent raises on purpose (the command line prints its message in one line)."""


class OpFailedError(AgentError):
    """One op could not be measured (bad model, runtime error, unparsable tool output, timeout).

    The agent reports it as a failed task with this message as the reason, and goes on."""


class ManifestError(AgentError):
    """The ops.jsonl to measure does not exist (a malformed one is a fbnet_core FormatError)."""


class BackendUnavailableError(AgentError):
    """The requested backend or execution provider is not installed on this host."""
