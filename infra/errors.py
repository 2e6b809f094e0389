"""The deployment half's exceptions: one flat tree under :class:`InfraError`."""

from collections.abc import Iterable


class InfraError(Exception):
    """Base of every error the deployment code raises on purpose."""


class ConfigError(InfraError):
    """A stack config is invalid.

    ``problems`` holds one entry per bad key, each ``"<dotted.key>: <reason>"``
    (e.g. ``canary.weight: must be between 0 and 100, got 150``), so a caller
    can show every problem at once instead of the first one.
    """

    def __init__(self, problems: Iterable[str], source: str | None = None) -> None:
        self.problems: list[str] = list(problems)
        self.source = source
        super().__init__(self._message())

    def _message(self) -> str:
        head = f"invalid stack config {self.source}" if self.source else "invalid stack config"
        return "\n".join([f"{head}:", *(f"  {p}" for p in self.problems)])

    def __str__(self) -> str:
        return self._message()


class VaultError(InfraError):
    """Reading secrets from Vault failed (unreachable, forbidden, missing path or key)."""


class RenderError(InfraError):
    """Rendering a stack's objects to YAML failed."""


class ToolchainError(InfraError):
    """A pinned tool could not be built or installed, or is missing."""
