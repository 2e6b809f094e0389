"""The demo's dev stack, pointed at the real node: set with ``pulumi config`` in the demo's copy.

The committed ``Pulumi.dev.yaml`` stays as it is (KWOK takes its pods, ExternalSecrets name its
secrets); the demo's project copy (:mod:`infra.tools.local.project`) gets, every run:

* ``scheduling``: the real node's label and a toleration of its taint, so every pod runs there;
* ``redisUrl``, ``artifacts`` and the ``network`` peers: Redis and MinIO at the host's veth
  address, relayed to their loopback ports; presigned URLs for the host at ``127.0.0.1``;
* no Vault key (``secrets.keys`` removed) and the API token and store credentials as
  ``secretValues``, Pulumi secrets encrypted with the stack's passphrase, passed on stdin.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from infra import runner
from infra.config.sections.secrets_config import SECRET_VALUES_KEY
from infra.errors import DemoError
from infra.tools.local.realnode.layout import HOST_ADDRESS, NODE_LABEL, NODE_TAINT

STACK = "dev"


def settings(redis_port: int, store_port: int) -> dict[str, str]:
    """The plain ``--path`` settings of the copy (``pulumi config set-all --plaintext``)."""
    key, _, effect = NODE_TAINT
    peer = f"{HOST_ADDRESS}/32"
    return {
        f'scheduling.nodeSelector["{NODE_LABEL[0]}"]': NODE_LABEL[1],
        "scheduling.tolerations[0].key": key,
        "scheduling.tolerations[0].operator": "Exists",
        "scheduling.tolerations[0].effect": effect,
        "artifacts.endpoint": f"http://{HOST_ADDRESS}:{store_port}",
        "artifacts.publicEndpoint": f"http://127.0.0.1:{store_port}",
        "network.redisPort": str(redis_port),
        "network.redisCidrs[0]": peer,
        "network.s3Port": str(store_port),
        "network.s3Cidrs[0]": peer,
    }


def point_at_real_node(
    project: Path, env: Mapping[str, str], redis_port: int, store_port: int, secret_values: Mapping[str, str]
) -> None:
    """Set the copy's dev stack as the module docstring says (``pulumi stack select`` done)."""

    def pulumi(*args: str, stdin: str | None = None) -> None:
        runner.run(["pulumi", "config", *args, "--stack", STACK], error=DemoError, env=env, cwd=str(project),
                   stdin=stdin, timeout=120)  # fmt: skip

    pulumi("rm", "--path", "secrets.keys")
    plain = [f"--plaintext={k}={v}" for k, v in settings(redis_port, store_port).items()]
    pulumi("set-all", "--path", *plain, f"--secret=redisUrl=redis://{HOST_ADDRESS}:{redis_port}")
    for name, value in sorted(secret_values.items()):
        pulumi("set", "--secret", "--path", f"{SECRET_VALUES_KEY}.{name}", stdin=value)
