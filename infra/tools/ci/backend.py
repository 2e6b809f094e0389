"""Which Pulumi state backend a repository uses, and what a CI job needs to log in to it.

A repository says it once, in the variable ``PULUMI_BACKEND`` (``vars.PULUMI_BACKEND``); the
workflows are the same for every choice. ``.github/actions/pulumi-login`` runs
``python -m infra ci backend`` (this check) and then, for an OIDC backend, the cloud's own login
action. Each kind pairs with the scheme of ``PULUMI_BACKEND_URL`` (a secret of the job's
environment), so a mismatch fails the job's first step naming both, not a ``pulumi`` command later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from infra.errors import InputError

ENV_BACKEND = "PULUMI_BACKEND"
ENV_URL = "PULUMI_BACKEND_URL"
ENV_TOKEN = "PULUMI_ACCESS_TOKEN"
ENV_PASSPHRASE = "PULUMI_CONFIG_PASSPHRASE"


@dataclass(frozen=True)
class Backend:
    """One kind of state backend: the URL schemes it takes and how a job logs in to it."""

    name: str
    schemes: tuple[str, ...]
    #: The cloud login action that trades GitHub's OIDC token for the role (None: no OIDC).
    oidc_action: str | None
    #: The environment variables that must be set (non-empty) in the job.
    needs: tuple[str, ...]
    what: str


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend(
            "url",
            ("file://", "s3://", "gs://", "azblob://", "https://"),
            None,
            (ENV_URL,),
            "PULUMI_BACKEND_URL as it is, with whatever credentials the job's environment holds",
        ),
        Backend(
            "cloud",
            ("https://",),
            None,
            (ENV_TOKEN,),
            "Pulumi Cloud (PULUMI_ACCESS_TOKEN; PULUMI_BACKEND_URL empty, or a self-hosted https:// URL)",
        ),
        Backend(
            "s3",
            ("s3://",),
            "aws-actions/configure-aws-credentials",
            (ENV_URL,),
            "an S3 bucket, with an AWS role assumed through OIDC",
        ),
        Backend(
            "gcs",
            ("gs://",),
            "google-github-actions/auth",
            (ENV_URL,),
            "a GCS bucket, with workload identity federation",
        ),
        Backend(
            "azblob",
            ("azblob://",),
            "azure/login",
            (ENV_URL,),
            "an Azure blob container, with a federated credential",
        ),
    )
}
#: ``PULUMI_BACKEND`` unset is the self-managed URL backend (what the workflows did before).
DEFAULT = "url"


def check(env: Mapping[str, str]) -> Backend:
    """The backend ``env`` selects, or InputError naming the variable that is wrong (never a value
    of a secret: the URL's scheme at most)."""
    name = env.get(ENV_BACKEND, "").strip() or DEFAULT
    backend = BACKENDS.get(name)
    if backend is None:
        raise InputError(
            f"{ENV_BACKEND}: {name!r} is not one of {', '.join(BACKENDS)} (a repository variable)"
        )
    for var in backend.needs:
        if not env.get(var, "").strip():
            raise InputError(
                f"{var}: empty, and {ENV_BACKEND}={name} needs it (a secret of the job's environment)"
            )
    url = env.get(ENV_URL, "").strip()
    if url and not url.startswith(backend.schemes):
        scheme = url.split("://", 1)[0] + "://" if "://" in url else "no scheme"
        takes = " or ".join(backend.schemes)
        raise InputError(f"{ENV_URL}: {ENV_BACKEND}={name} takes {takes} URLs, this one has {scheme}")
    return backend
