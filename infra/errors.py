"""The deployment half's exceptions, all of them: one tree under :class:`InfraError`, by topic."""

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


class ToolchainError(InfraError):
    """A pinned tool could not be built or installed, or is missing."""


# --- The local environment (infra/tools/local/, infra/tools/demo/cli.py) ---


class ProcessError(InfraError):
    """A supervised process failed to start or to stop."""


class CertError(InfraError):
    """openssl failed while making the local PKI."""


class KubeError(InfraError):
    """The local API server did not answer as expected."""


class DemoError(InfraError):
    """A step of the demo failed; the message says which and why."""


class VerifyError(InfraError):
    """One check of ``python -m infra verify`` failed; the message says what was expected and found."""


# --- The worker image (infra/tools/image/) ---


class ImageError(InfraError):
    """Building, pushing, inspecting or pinning the worker image failed."""


class ToolFailed(ImageError):
    """An external tool (buildah, skopeo, debootstrap, tar) exited non-zero or did not finish.

    Raised by ``infra.runner.run``: the message names the command line and the tail of its
    output, so the cause can be read without re-running it.
    """


# --- Image signatures (infra/supply_chain/) ---


class SignatureError(InfraError):
    """An image digest is not signed by the configured signer, or its signature cannot be read."""


# --- Releases (infra/tools/release/) ---


class ReleaseError(InfraError):
    """A release command was refused: bad input, unknown release ID, a failed gate.

    The stack file and its history are left untouched when this is raised.
    """


class HistoryError(ReleaseError):
    """A stack's history file cannot be read (malformed line, duplicate ID)."""


class StackFileError(ReleaseError):
    """A stack file is not YAML the release tool can read; the message names the file and line."""


class EngineError(ReleaseError):
    """The Pulumi engine (Automation API) could not answer or apply."""


class PrometheusError(ReleaseError):
    """A query could not be answered (unreachable server, bad PromQL, several series)."""


# --- CI (infra/tools/ci/cli.py) ---


class InputError(InfraError, ValueError):
    """A workflow input (an environment variable) that is not acceptable; names the variable."""


class TargetError(InfraError):
    """The cluster a stack would deploy to is not the one its config binds it to (or cannot be read)."""
