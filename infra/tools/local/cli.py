"""`python -m infra local bootstrap|up|down|env|status`: the toolchain and the embedded cluster."""

from __future__ import annotations

import argparse
import sys

from infra.errors import InfraError
from infra.tools.local.cluster import control_plane
from infra.tools.local.cluster.shell_env import exports
from infra.tools.local.layout import StateDir
from infra.tools.local.realnode import node
from infra.tools.local.realnode.layout import HOST_ADDRESS
from infra.tools.local.toolchain import build, plugins
from infra.tools.local.toolchain.versions import TOOLS


def _port(text: str) -> int:
    """A TCP port number (1-65535), for ``--host-port``."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port (1-65535), got {text!r}")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m infra local", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    boot = sub.add_parser("bootstrap", help="build the pinned Go toolchain (cached by version)")
    boot.add_argument("--only", nargs="+", metavar="TOOL", choices=[t.name for t in TOOLS],
                      help="build only these tools")  # fmt: skip
    up = sub.add_parser("up", help="start etcd, kube-apiserver, controllers, KWOK; install CRDs")
    up.add_argument("--real-node", action="store_true",
                    help="also start a real node: containerd and a kubelet (docs/real-node.md)")  # fmt: skip
    up.add_argument("--host-port", type=_port, action="append", default=[], metavar="PORT",
                    help=f"with --real-node: pods reach this port of the host's loopback at "
                         f"{HOST_ADDRESS}:PORT (repeatable)")  # fmt: skip
    down = sub.add_parser("down", help="stop every local cluster process (and the real node)")
    down.add_argument("--purge", action="store_true", help="also delete certs, etcd data, logs, Pulumi state")
    sub.add_parser("env", help='print shell exports: eval "$(python -m infra local env)"')
    sub.add_parser("status", help="show which tools are built and which processes run")
    return parser


def _status(state: StateDir) -> int:
    timings = build.cold_timings()
    for tool in TOOLS:
        path = build.tool_path(tool)
        built = f"built (first build took {timings[tool.name]:.0f}s)" if tool.name in timings else "built"
        if path.is_symlink():
            built = f"installed: {path.resolve()}"
        if tool.install == "plugin" and path.exists() and not plugins.installed(tool):
            built += ", not yet installed as a plugin"
        print(f"{tool.name:<28} {tool.version:<10} {built if path.exists() else 'MISSING'}")
    cluster = control_plane.Cluster(state)
    for name, pid in {**cluster.status(), **node.RealNode(cluster).status()}.items():
        print(f"{name:<28} {'running pid ' + str(pid) if pid else 'stopped'}")
    return 0


def main(argv: list[str]) -> int:
    """Entry point for ``python -m infra local``."""
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "host_port", None) and not args.real_node:
        parser.error("--host-port needs --real-node: the relay for pods is the real node's")
    state = StateDir.default()
    try:
        if args.command == "bootstrap":
            build.bootstrap(only=args.only)
        elif args.command == "up":
            cluster = control_plane.up(state)
            if args.real_node:
                try:
                    node.up(cluster, host_ports=tuple(dict.fromkeys(args.host_port)))
                except InfraError:
                    node.down(cluster)  # no half-started node: the cluster stays up, the error is shown
                    raise
        elif args.command == "down":
            node.down(control_plane.Cluster(state))  # first: it asks the API server to forget the node
            control_plane.down(state, purge=args.purge)
        elif args.command == "env":
            state.pulumi_backend.mkdir(parents=True, exist_ok=True)  # `pulumi login file://` needs it
            print(exports(state))
        else:
            return _status(state)
    except InfraError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
