"""Which cluster the program is about to deploy to, checked against the stack's ``cluster`` config.

:func:`check` runs at program start, before anything is declared: it reads the ``kube-system``
Namespace's UID and the API server URL through ``kubectl`` with the stack's own kubeconfig and
context (the same ones its explicit provider uses) and raises :class:`~infra.errors.TargetError`
naming the expected and the actual cluster when they differ. ``kubectl`` (on ``PATH``) costs a
subprocess, not an import: the program's start-up stays light.

The unit tests run the program under mocks with no cluster: the harness
(``infra/tools/snapshot/harness.py``) swaps the reader with :func:`use_reader`, explicitly;
nothing else can skip the check.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from infra import runner
from infra.config.sections.cluster_target import ClusterTarget
from infra.errors import TargetError
from infra.loopback import is_loopback_host


@dataclass(frozen=True)
class Seen:
    """The cluster a kubeconfig reaches: its kube-system Namespace UID and its API server URL."""

    uid: str
    server: str


Reader = Callable[[ClusterTarget], Seen]


def kubectl_args(target: ClusterTarget) -> list[str]:
    """``kubectl`` and the flags that select the stack's kubeconfig and context."""
    argv = ["kubectl"]
    if target.kubeconfig:
        argv += ["--kubeconfig", os.path.expanduser(target.kubeconfig)]
    if target.context:
        argv += ["--context", target.context]
    return argv


def read_cluster(target: ClusterTarget) -> Seen:
    """Ask the cluster the stack's kubeconfig reaches for its identity (``kubectl``, 30 s at most).

    The two ``kubectl`` calls (the kubeconfig's server, read locally, and the Namespace UID, read
    from the API server) run side by side: the check costs one round of process start-up.
    """
    base = kubectl_args(target)
    hint = "the stack's cluster.kubeconfig / cluster.context (or KUBECONFIG) must reach its cluster"
    calls = (
        [*base, "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"],
        [*base, "get", "namespace", "kube-system", "-o", "jsonpath={.metadata.uid}", "--request-timeout=20s"],
    )
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        server, uid = pool.map(lambda argv: runner.run(argv, error=TargetError, timeout=30, hint=hint), calls)
    return Seen(uid=uid.strip(), server=server.strip().rstrip("/"))


_READER: list[Reader] = [read_cluster]


@contextmanager
def use_reader(reader: Reader) -> Iterator[None]:
    """Read the cluster with ``reader`` inside the block (the mock harness's, for unit tests)."""
    saved = _READER[0]
    _READER[0] = reader
    try:
        yield
    finally:
        _READER[0] = saved


def is_loopback(server: str) -> bool:
    """Whether ``server``'s host is a loopback address (or ``localhost``)."""
    return is_loopback_host(urlsplit(server).hostname or "")


def mismatch(target: ClusterTarget, seen: Seen) -> str | None:
    """Why ``seen`` is not ``target``'s cluster, or None when it is."""
    if target.is_local:
        if is_loopback(seen.server):
            return None
        want = "the local demo cluster (identity: local, an API server on a loopback address)"
    elif seen.uid != target.identity:
        want = f"cluster {target.identity}" + (f" at {target.server}" if target.server else "")
    elif target.server and seen.server != target.server:
        want = f"cluster {target.identity} at {target.server}"
    else:
        return None
    return f"expected {want}, but the kubeconfig reaches cluster {seen.uid} at {seen.server}"


def check(target: ClusterTarget, stack: str) -> Seen:
    """Raise TargetError unless the stack's kubeconfig reaches the cluster its config names."""
    seen = _READER[0](target)
    why = mismatch(target, seen)
    if why:
        where = ", ".join(
            f"{key} {value}" for key, value in (("kubeconfig", target.kubeconfig or "$KUBECONFIG"),
                                                ("context", target.context or "(current)"))
        )  # fmt: skip
        raise TargetError(
            f"stack {stack} is bound to another cluster: {why} ({where}); nothing was declared. "
            "Point cluster.kubeconfig/cluster.context at the right cluster, or fix cluster.identity."
        )
    return seen
