"""The release tool's errors, in the deployment half's one flat tree."""

from infra.errors import InfraError


class ReleaseError(InfraError):
    """A release command was refused: bad input, unknown release ID, a failed gate.

    The stack file and its history are left untouched when this is raised.
    """


class HistoryError(ReleaseError):
    """A stack's history file cannot be read (malformed line, duplicate ID)."""


class EngineError(ReleaseError):
    """The Pulumi engine (Automation API) could not answer or apply."""
