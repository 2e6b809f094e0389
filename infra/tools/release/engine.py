"""The release tool's touch points with the Pulumi engine.

* :func:`last_deploy` — what a stack's last ``pulumi up`` deployed: its non-secret outputs
  (``digests``, ``canaryWeight``, ``releaseId``) and the update's result and time, read with
  ``pulumi stack output --json`` and ``pulumi stack history --json`` **without**
  ``--show-secrets``. Neither decrypts anything, so they run with no passphrase or secrets
  provider at all: prod's environment reads staging's deploy with read access to staging's
  backend and nothing of staging's secrets (docs/releases.md#promoting-across-environments).
  :func:`deployed_digest` (the promote gate) and ``release status`` use it.
* :func:`apply` — ``pulumi up --policy-pack policy`` for one stack (the ``--apply`` flag), through
  the Automation API: a release applied from a laptop passes the same guard rails as one
  previewed in a pull request.

Both run the project in the repository root (``Pulumi.yaml``) with whatever backend the
environment selects (``python -m infra local env`` locally, secrets in CI); the reads take the
source's backend from ``$RELEASE_SOURCE_BACKEND_URL`` when it is set (staging and prod on
different backends).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra import runner
from infra.components import outputs as stack_outputs
from infra.errors import EngineError
from infra.tools.release import report
from worker.constants import TRACK_STABLE

#: The policy pack every apply runs with, relative to the project root.
POLICY_PACK = "policy"
#: Where the reads find the source stack's backend when it is not ``$PULUMI_BACKEND_URL``'s.
SOURCE_BACKEND_ENV = "RELEASE_SOURCE_BACKEND_URL"
#: What the reads never pass on: they decrypt nothing, so a passphrase could only be the wrong one.
_SECRET_ENV = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")
#: How many updates back the reads look for the last ``pulumi up`` (refreshes come in between).
HISTORY_PAGE = 20


def digest_from_outputs(outputs: Mapping[str, Any], track: str = TRACK_STABLE) -> str | None:
    """The deployed digest of ``track`` from a stack's plain output values (None if absent)."""
    digests = outputs.get(stack_outputs.DIGESTS)
    if isinstance(digests, Mapping):
        value = digests.get(track)
        return str(value) if value else None
    return None


def why(exc: Exception) -> str:
    """The engine's own ``error: …`` line when there is one (CommandError text embeds all output)."""
    errors = [line[line.index("error: ") :].strip() for line in str(exc).splitlines() if "error: " in line]
    return errors[0] if errors else str(exc).strip()


def stack_handle(root: Path, stack: str, env: Mapping[str, str] | None = None) -> Any:
    """The Automation API handle of ``stack`` in the project at ``root``; ``env`` is added to the
    environment of the engine commands it runs."""
    from pulumi import automation as auto

    opts = auto.LocalWorkspaceOptions(env_vars=dict(env)) if env else None
    try:
        return auto.select_stack(stack_name=stack, work_dir=str(root), opts=opts)
    except Exception as exc:  # the Automation API raises CommandError subclasses and OSError
        raise EngineError(f"cannot select stack {stack!r} in {root}: {why(exc)}") from None


@dataclass(frozen=True)
class Deploy:
    """A stack's last ``pulumi up``: its result and time, and its plain (non-secret) outputs."""

    result: str
    time: str | None
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        """True when that update succeeded (a failed one may have left its outputs half-written)."""
        return self.result == "succeeded"

    def output(self, name: str) -> Any:
        """One output's value; None when absent or secret (``[secret]`` is not a value)."""
        value = self.outputs.get(name)
        return None if value == "[secret]" else value


def read_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the reads: no passphrase; the source backend when one is named."""
    env = {k: v for k, v in (os.environ if environ is None else environ).items() if k not in _SECRET_ENV}
    if env.get(SOURCE_BACKEND_ENV):
        env["PULUMI_BACKEND_URL"] = env[SOURCE_BACKEND_ENV]
    return env


def _pulumi_json(root: Path, stack: str, *args: str) -> Any:
    env = read_env()
    argv = ["pulumi", *args, "--json", "--stack", stack, "--non-interactive"]
    done = runner.call(argv, error=EngineError, env=env, cwd=root, timeout=120)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        why_ = next((line.strip() for line in lines if line.strip().startswith("error:")), None)
        where = env.get("PULUMI_BACKEND_URL") or "the logged-in backend"
        raise EngineError(
            f"cannot read stack {stack!r} ({' '.join(args[:2])}) in {where}: "
            f"{why_ or (lines[-1] if lines else f'exit {done.returncode}')}"
        )
    try:
        return json.loads(done.stdout or "null")
    except ValueError:
        raise EngineError(f"pulumi {' '.join(args)} --stack {stack} printed no JSON") from None


def last_deploy(root: Path, stack: str) -> Deploy | None:
    """What ``stack``'s last ``pulumi up`` deployed; None if it has none.

    Only non-secret outputs are read and nothing is decrypted: no passphrase is needed (the
    reads run without one), only read access to the stack's backend.
    """
    updates = [u for u in _pulumi_json(root, stack, "stack", "history", "--page-size", str(HISTORY_PAGE))
               if isinstance(u, Mapping) and u.get("kind") == "update"]  # fmt: skip
    if not updates:
        return None
    last = max(updates, key=lambda u: int(u.get("version") or 0))
    outputs = _pulumi_json(root, stack, "stack", "output")
    return Deploy(
        result=str(last.get("result") or "unknown"),
        time=last.get("endTime") or last.get("startTime"),
        outputs=dict(outputs) if isinstance(outputs, Mapping) else {},
    )


def deployed_digest(root: Path, stack: str) -> str | None:
    """The stable digest of ``stack``'s last successful ``pulumi up``; None if it never succeeded.

    The stack's outputs are those of its last update; when that update failed
    the outputs may be half-written, so the answer is None then too.
    """
    deploy = last_deploy(root, stack)
    if deploy is None or not deploy.succeeded:
        return None
    return digest_from_outputs(deploy.outputs)


def apply(root: Path, stack: str) -> None:
    """``pulumi preview`` then ``pulumi up``, both ``--policy-pack policy``, streaming the output.

    The Automation API's ``up`` skips the preview, and the pack's stack-wide policies (prod
    sizing) only run once every resource is registered: on their own they would refuse an
    update that had already been applied. The preview runs them before anything changes.

    The engine runs with a ``TMPDIR`` of its own, removed when it ends: pulumi-kubernetes writes
    the provider's kubeconfig, credentials included, to a new temporary file each time it is
    configured and never removes it (``writeKubeconfigToFile`` in its provider, 4.25).
    """
    options: dict[str, Any] = {
        "policy_packs": [str(root / POLICY_PACK)],
        "color": "never",
        "on_output": lambda line: print(line, end="" if line.endswith("\n") else "\n"),
    }
    with tempfile.TemporaryDirectory(prefix="release-engine-") as private_tmp:
        handle = stack_handle(root, stack, env={"TMPDIR": private_tmp})
        for command, run in (("preview", handle.preview), ("up", handle.up)):
            try:
                result = run(**options)
            except Exception as exc:
                raise EngineError(
                    f"pulumi {command} --stack {stack} failed (the stack file and its history are "
                    f"already written; fix and rerun `pulumi up --stack {stack}`, "
                    f"or `release rollback --stack {stack}`): {why(exc)}"
                ) from None
    report.applied(stack, result.summary.result)
    print(f"pulumi up --stack {stack}: {result.summary.result}")
