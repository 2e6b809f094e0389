"""The manifest builders the components declare: plain dicts, built from the config alone."""

from __future__ import annotations

from pathlib import Path

from infra.config.model import StackConfig, load_stack_file
from infra.config.sections.secrets_config import VaultStore
from infra.manifests.common import (
    ANNOTATION_CANARY_WEIGHT,
    ANNOTATION_CONFIG_CHECKSUM,
    ANNOTATION_RELEASE_ID,
    ANNOTATION_SECRET_CHECKSUM,
    API_NAME,
    Manifest,
    common_labels,
)
from infra.manifests.job_api import api_deployment, api_labels, api_selector
from infra.manifests.namespace import CONFIG_MAP_NAME, base_objects
from infra.manifests.observability.monitors import prometheus_rule, service_monitor
from infra.manifests.pod import SecretFiles
from infra.manifests.scaling.canary import TrackBounds
from infra.manifests.secret_sources import (
    STORE_SERVICE_ACCOUNT,
    VAULT_SECRET_NAME,
    external_secret,
    secret_store,
)
from infra.manifests.worker_deployment import deployment, deployment_name
from worker import constants as c

ROOT = Path(__file__).resolve().parents[3]
CANARY = "ghcr.io/mobius/preview-worker@sha256:" + "c" * 64


def prod(**overrides: object) -> StackConfig:
    """The committed prod stack's config, with top-level fields replaced."""
    return load_stack_file(ROOT / "Pulumi.prod.yaml").model_copy(update=overrides)


def test_base_objects_put_the_given_config_in_the_configmap() -> None:
    cfg = prod()
    objects = dict(base_objects(cfg, "prod", common_labels("prod"), {"A": "1"}))
    assert list(objects) == ["namespace", "serviceaccount", "config", "service"]
    assert objects["config"]["metadata"]["name"] == CONFIG_MAP_NAME
    assert objects["config"]["data"] == {"A": "1"}
    assert "namespace" not in objects["namespace"]["metadata"]
    labels = objects["namespace"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_api_deployment_carries_the_checksums_and_selects_its_own_pods() -> None:
    cfg = prod(release_id="r-20261206-01")
    manifest = api_deployment(
        cfg,
        "prod",
        service_account="sa",
        secret_sources=[],
        secret_files=SecretFiles(),
        config_checksum="config-sum",
        secret_checksum="secret-sum",
    )
    template = manifest["spec"]["template"]
    assert template["metadata"]["annotations"] == {
        ANNOTATION_CONFIG_CHECKSUM: "config-sum",
        ANNOTATION_SECRET_CHECKSUM: "secret-sum",
    }
    # The release id names the Deployment, never the pods: a weight step restarts nothing.
    assert manifest["metadata"]["annotations"] == {ANNOTATION_RELEASE_ID: "r-20261206-01"}
    assert manifest["spec"]["selector"]["matchLabels"] == api_selector("prod")
    assert api_selector("prod").items() <= api_labels("prod").items()
    (container,) = template["spec"]["containers"]
    assert container["image"] == cfg.image and container["args"] == ["api"]


def track(cfg: StackConfig, name: str, image: str, bounds: TrackBounds) -> Manifest:
    return deployment(
        cfg,
        instance="prod",
        track=name,
        image=image,
        bounds=bounds,
        labels=common_labels("prod"),
        service_account="sa",
        env_sources=[],
        config_checksum="config-sum",
        secret_checksum="secret-sum",
        secret_files=SecretFiles(),
    )


def test_a_track_scaled_to_zero_pins_zero_replicas_else_leaves_them_to_the_autoscaler() -> None:
    cfg = prod()
    assert "replicas" not in track(cfg, c.TRACK_STABLE, cfg.image, TrackBounds(2, 6))["spec"]
    assert track(cfg, c.TRACK_CANARY, CANARY, TrackBounds(0, 0))["spec"]["replicas"] == 0


def test_only_the_canary_deployment_says_its_weight() -> None:
    cfg = prod(canary=prod().canary.model_copy(update={"weight": 10, "image": CANARY}))
    canary = track(cfg, c.TRACK_CANARY, CANARY, TrackBounds(1, 1))
    stable = track(cfg, c.TRACK_STABLE, cfg.image, TrackBounds(1, 5))
    assert canary["metadata"]["annotations"][ANNOTATION_CANARY_WEIGHT] == "10"
    assert ANNOTATION_CANARY_WEIGHT not in stable["metadata"].get("annotations", {})
    assert canary["metadata"]["name"] == deployment_name(c.TRACK_CANARY)


def test_monitors_carry_the_stacks_service_monitor_labels() -> None:
    cfg = prod()
    sm = service_monitor(cfg, name=API_NAME, selector={"a": "b"}, port="http", labels={"x": "y"})
    assert sm["metadata"]["labels"] == {"x": "y", **cfg.monitoring.service_monitor_labels}
    assert sm["spec"]["endpoints"][0]["path"] == c.METRICS_PATH
    rule = prometheus_rule(cfg, name="n", labels={})
    assert rule["kind"] == "PrometheusRule" and rule["spec"]["groups"]


def test_external_secret_maps_every_key_and_the_store_only_when_declared() -> None:
    cfg = prod()
    es = external_secret(cfg, {})
    assert es["metadata"]["name"] == VAULT_SECRET_NAME
    assert {d["secretKey"] for d in es["spec"]["data"]} == set(cfg.secrets.keys)
    platform = prod(secrets=cfg.secrets.model_copy(update={"store": None}))
    assert secret_store(platform, {}) == []
    own = VaultStore(server="https://vault.example:8200")
    declared = prod(secrets=cfg.secrets.model_copy(update={"store": own, "store_kind": "SecretStore"}))
    account, store = secret_store(declared, {})
    assert (account["kind"], account["metadata"]["name"]) == ("ServiceAccount", STORE_SERVICE_ACCOUNT)
    auth = store["spec"]["provider"]["vault"]["auth"]["kubernetes"]
    assert auth["serviceAccountRef"] == {"name": STORE_SERVICE_ACCOUNT}
