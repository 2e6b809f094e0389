"""The release tool's two touch points with the Pulumi engine, through the Automation API.

* :func:`deployed_digest` — the stable digest a stack's last successful ``pulumi up``
  deployed (the promote gate reads it from the stack's ``digests`` output);
* :func:`apply` — ``pulumi up --policy-pack policy`` for one stack (the ``--apply`` flag): a
  release applied from a laptop passes the same guard rails as one previewed in a pull request.

Both run the project in the repository root (``Pulumi.yaml``) with whatever
backend and passphrase the environment selects (``python -m infra local env``
locally, secrets in CI).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infra.components import outputs as stack_outputs
from infra.errors import EngineError
from worker.constants import TRACK_STABLE

#: The policy pack every apply runs with, relative to the project root.
POLICY_PACK = "policy"


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


def stack_handle(root: Path, stack: str) -> Any:
    """The Automation API handle of ``stack`` in the project at ``root``."""
    from pulumi import automation as auto

    try:
        return auto.select_stack(stack_name=stack, work_dir=str(root))
    except Exception as exc:  # the Automation API raises CommandError subclasses and OSError
        raise EngineError(f"cannot select stack {stack!r} in {root}: {why(exc)}") from None


def deployed_digest(root: Path, stack: str) -> str | None:
    """The stable digest of ``stack``'s last successful ``pulumi up``; None if it never succeeded.

    The stack's outputs are those of its last update; when that update failed
    the outputs may be half-written, so the answer is None then too.
    """
    handle = stack_handle(root, stack)
    try:
        updates = [u for u in handle.history(page_size=20) if u.kind == "update"]
        if not updates or updates[0].result != "succeeded":
            return None
        outputs = {key: out.value for key, out in handle.outputs().items()}
    except Exception as exc:
        raise EngineError(f"cannot read stack {stack!r}'s history or outputs: {why(exc)}") from None
    return digest_from_outputs(outputs)


def apply(root: Path, stack: str) -> None:
    """``pulumi preview`` then ``pulumi up``, both ``--policy-pack policy``, streaming the output.

    The Automation API's ``up`` skips the preview, and the pack's stack-wide policies (prod
    sizing) only run once every resource is registered: on their own they would refuse an
    update that had already been applied. The preview runs them before anything changes.
    """
    handle = stack_handle(root, stack)
    options: dict[str, Any] = {
        "policy_packs": [str(root / POLICY_PACK)],
        "color": "never",
        "on_output": lambda line: print(line, end="" if line.endswith("\n") else "\n"),
    }
    for command, run in (("preview", handle.preview), ("up", handle.up)):
        try:
            result = run(**options)
        except Exception as exc:
            raise EngineError(
                f"pulumi {command} --stack {stack} failed (the stack file and its history are already "
                f"written; fix and rerun `pulumi up --stack {stack}`, "
                f"or `release rollback --stack {stack}`): {why(exc)}"
            ) from None
    print(f"pulumi up --stack {stack}: {result.summary.result}")
