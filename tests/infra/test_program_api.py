"""The job API, the artifact-store settings and the retention sweep, as the real program declares
them for every committed stack (under Pulumi's mocks)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import kubernetes_validate
import pytest
from conftest import STACKS

from infra.config.model import load_stack_file
from infra.tools.snapshot.harness import ROOT, ProgramRun, run_program
from worker import constants as c
from worker.tunables import to_env

APP, API, SWEEP = "preview-worker", "preview-worker-api", "preview-worker-sweep"
KUBERNETES_VERSION = "1.34.0"  # as test_k8s_schemas: the local cluster runs v1.34.x
NAME = "app.kubernetes.io/name"
pytestmark = pytest.mark.parametrize("stack", STACKS)


def cfg_of(stack: str) -> Any:
    return load_stack_file(ROOT / f"Pulumi.{stack}.yaml")


def only_container(pod_spec: dict[str, Any]) -> dict[str, Any]:
    (ctr,) = pod_spec["containers"]
    return dict(ctr)


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def store_env(cfg: Any) -> dict[str, str]:
    a, w = cfg.artifacts, cfg.worker
    env = {
        c.ENV_ARTIFACT_STORE: "s3",
        c.ENV_S3_BUCKET: a.bucket,
        c.ENV_S3_PREFIX: w.s3_prefix,
        c.ENV_S3_REGION: w.s3_region,
        c.ENV_S3_ADDRESSING_STYLE: w.s3_addressing_style,
        c.ENV_S3_URL_TTL_SECONDS: str(w.s3_url_ttl_seconds),
        c.ENV_RETENTION_DAYS: str(w.retention_days),
    }
    env.update(
        {
            k: v
            for k, v in ((c.ENV_S3_ENDPOINT, a.endpoint), (c.ENV_S3_PUBLIC_ENDPOINT, a.public_endpoint))
            if v
        }
    )
    return env


def test_api_deployment_runs_the_stable_image(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    cfg, run = cfg_of(stack), stack_runs[stack]
    d = run.object("Deployment", API)
    ctr = only_container(d["spec"]["template"]["spec"])
    assert (ctr["image"], ctr["args"]) == (cfg.image, ["api"])  # never the canary image
    assert ctr["ports"] == [{"name": c.API_PORT_NAME, "containerPort": c.API_PORT, "protocol": "TCP"}]
    assert {"name": c.ENV_TRACK, "value": c.TRACK_STABLE} in ctr["env"]
    digest = cfg.image.rpartition("@sha256:")[2]
    assert {"name": c.ENV_RELEASE, "value": f"sha256-{digest[:12]}"} in ctr["env"]  # the stable release
    r = cfg.api.resources
    assert ctr["resources"] == {  # no disk volume (tmp is in memory): ephemeral-storage for logs only
        "requests": {"cpu": r.requests.cpu, "memory": r.requests.memory, "ephemeral-storage": "128Mi"},
        "limits": {"cpu": r.limits.cpu, "memory": r.limits.memory, "ephemeral-storage": "128Mi"},
    }
    assert "replicas" not in d["spec"] and d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    hpa = run.object("HorizontalPodAutoscaler", API)["spec"]
    assert hpa["scaleTargetRef"]["name"] == API
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (cfg.api.replicas.min, cfg.api.replicas.max)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == cfg.api.cpu_target
    assert run.outputs["api"] == API


def test_api_has_the_worker_pod_hardening(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    run = stack_runs[stack]
    worker_pod = run.object("Deployment", f"{APP}-stable")["spec"]["template"]["spec"]
    api_pod = run.object("Deployment", API)["spec"]["template"]["spec"]
    assert api_pod["securityContext"] == worker_pod["securityContext"]
    assert only_container(api_pod)["securityContext"] == only_container(worker_pod)["securityContext"]
    assert only_container(api_pod)["securityContext"]["readOnlyRootFilesystem"] is True
    assert api_pod["automountServiceAccountToken"] is False
    assert api_pod["serviceAccountName"] == APP
    mounts = only_container(api_pod)["volumeMounts"]
    # Writable: /tmp only; anything else (the vault Secret's files) is mounted read-only.
    assert [m for m in mounts if not m.get("readOnly")] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert [v["name"] for v in api_pod["volumes"] if "emptyDir" in v] == ["tmp"]


def test_api_probes(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    ctr = only_container(stack_runs[stack].object("Deployment", API)["spec"]["template"]["spec"])
    assert ctr["readinessProbe"]["httpGet"] == {"path": c.API_HEALTH_PATH, "port": c.API_PORT_NAME}
    assert ctr["livenessProbe"]["tcpSocket"] == {"port": c.API_PORT_NAME}
    assert ctr["startupProbe"]["tcpSocket"] == {"port": c.API_PORT_NAME}
    assert ctr["startupProbe"]["periodSeconds"] * ctr["startupProbe"]["failureThreshold"] == 60


def test_selectors_never_mix_api_and_worker_pods(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    run = stack_runs[stack]
    api_pod = run.object("Deployment", API)["spec"]["template"]["metadata"]["labels"]
    worker_pods = [
        d["spec"]["template"]["metadata"]["labels"]
        for d in run.objects("Deployment")
        if d["metadata"]["name"] != API
    ]
    assert worker_pods
    for kind in ("Service", "PodDisruptionBudget", "NetworkPolicy"):
        api_sel, worker_sel = (_selector(run.object(kind, name)) for name in (API, APP))
        assert selects(api_sel, api_pod) and not any(selects(api_sel, w) for w in worker_pods), kind
        assert all(selects(worker_sel, w) for w in worker_pods) and not selects(worker_sel, api_pod), kind
    # Each ServiceMonitor selects its own Service only: the worker's on the metrics port,
    # the API's on its HTTP port, where the API serves /metrics.
    services = {name: run.object("Service", name) for name in (APP, API)}
    monitors = {sm["metadata"]["name"]: sm for sm in run.objects("ServiceMonitor")}
    assert set(monitors) == {APP, API}
    for name, sm in monitors.items():
        picked = [
            n
            for n, svc in services.items()
            if selects(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
        ]
        assert picked == [name]
    (endpoint,) = monitors[API]["spec"]["endpoints"]
    api_ports = [p["name"] for p in services[API]["spec"]["ports"]]
    assert endpoint["port"] == c.API_PORT_NAME and api_ports == [c.API_PORT_NAME]
    assert endpoint["path"] == c.METRICS_PATH
    assert monitors[API]["spec"]["namespaceSelector"] == {
        "matchNames": [run.object("Service", API)["metadata"]["namespace"]]
    }
    assert run.object("PodDisruptionBudget", API)["spec"]["maxUnavailable"] == 1


def _selector(obj: dict[str, Any]) -> dict[str, str]:
    spec = obj["spec"]
    sel = spec.get("selector") or spec.get("podSelector")
    return dict(sel.get("matchLabels", sel))


def test_store_env_and_no_secret_in_any_configmap(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    cfg, run = cfg_of(stack), stack_runs[stack]
    worker, api = (run.object("ConfigMap", n)["data"] for n in (f"{APP}-config", f"{API}-config"))
    assert store_env(cfg).items() <= worker.items()
    # The same tunables, budget and store as the worker's, so both judge a job alike.
    shared = {k: v for k, v in worker.items() if k not in (c.ENV_DATA_DIR, c.ENV_METRICS_PORT)}
    shared = {k: v for k, v in shared.items() if k not in (c.ENV_RENDER_PROCESSES, c.ENV_RENDER_MEMORY_BYTES)}
    assert api == {**shared, c.ENV_API_HOST: "0.0.0.0", c.ENV_API_PORT: str(c.API_PORT)}
    assert to_env(cfg.worker).items() <= api.items() and store_env(cfg).items() <= api.items()
    assert (api[c.ENV_PATH_SOURCES], api[c.ENV_REDIS_BUDGET_BYTES]) == ("off", str(cfg.redis_budget_bytes))
    assert (api[c.ENV_QUEUE_NAME], api[c.ENV_QUEUE_MAX]) == (
        worker[c.ENV_QUEUE_NAME],
        str(cfg.worker.queue_max),
    )
    assert api[c.ENV_API_MAX_BODY_BYTES] == str(c.API_MAX_BODY_BYTES_DEFAULT)
    for cm in run.objects("ConfigMap"):
        assert not set(cm["data"]) & c.SECRET_ENV_VARS, cm["metadata"]["name"]
    # The store credentials reach worker, API and sweep through the same Secret(s) as REDIS_URL.
    assert set(cfg.secrets.keys) >= c.STORE_SECRET_ENV_VARS
    pods = [run.object("Deployment", n)["spec"]["template"]["spec"] for n in (f"{APP}-stable", API)]
    pods += [j["spec"]["jobTemplate"]["spec"]["template"]["spec"] for j in run.objects("CronJob")]
    refs = [[e for e in only_container(p)["envFrom"] if "secretRef" in e] for p in pods]
    files = [[v for v in p["volumes"] if "secret" in v] for p in pods]
    assert refs[0] or files[0]
    assert all(r == refs[0] for r in refs) and all(f == files[0] for f in files)
    (es,) = run.objects("ExternalSecret") or [None]  # vault mode would hold them in the env Secret
    assert es is None or {d["secretKey"] for d in es["spec"]["data"]} >= c.STORE_SECRET_ENV_VARS


def test_api_network_policy_is_exact(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    cfg, run = cfg_of(stack), stack_runs[stack]
    spec = run.object("NetworkPolicy", API)["spec"]
    net = cfg.network
    ingress_ns = {"kubernetes.io/metadata.name": net.api_ingress_namespace}
    prometheus_ns = {"kubernetes.io/metadata.name": cfg.monitoring.namespace}
    assert spec["ingress"] == [
        {
            "from": [{"namespaceSelector": {"matchLabels": ingress_ns}}],
            "ports": [{"protocol": "TCP", "port": c.API_PORT}],
        },
        # Prometheus scrapes the API's /metrics on the same port.
        {
            "from": [{"namespaceSelector": {"matchLabels": prometheus_ns}}],
            "ports": [{"protocol": "TCP", "port": c.API_PORT}],
        },
    ]
    ports = [[p["port"] for p in r["ports"]] for r in spec["egress"]]
    assert ports == [[53, 53], [net.redis_port], [net.s3_port]]
    worker_egress = run.object("NetworkPolicy", APP)["spec"]["egress"]
    assert spec["egress"][2] == worker_egress[2]  # the worker reaches the same S3 endpoint


def test_retention_sweep_cronjob(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    cfg, run = cfg_of(stack), stack_runs[stack]
    assert cfg.worker.retention_days > 0  # every committed stack sweeps
    cron = run.object("CronJob", SWEEP)
    assert (cron["spec"]["schedule"], cron["spec"]["concurrencyPolicy"]) == ("17 3 * * *", "Forbid")
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    ctr = only_container(pod)
    assert (ctr["image"], ctr["args"]) == (cfg.image, ["sweep"])
    worker_pod = run.object("Deployment", f"{APP}-stable")["spec"]["template"]["spec"]
    assert pod["securityContext"] == worker_pod["securityContext"]
    assert ctr["securityContext"] == only_container(worker_pod)["securityContext"]
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "OnFailure"
    assert ctr["envFrom"][0] == {"configMapRef": {"name": f"{API}-config"}}
    netpol = run.object("NetworkPolicy", SWEEP)["spec"]
    assert netpol["ingress"] == [] and [[p["port"] for p in r["ports"]] for r in netpol["egress"]] == [
        [53, 53],
        [cfg.network.s3_port],
    ]
    pod_labels = cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert selects(netpol["podSelector"]["matchLabels"], pod_labels)
    assert run.outputs["retentionSweep"] == SWEEP


def test_new_objects_pass_strict_schema_validation(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    run = stack_runs[stack]
    new = [o for o in run.objects() if o["metadata"]["labels"][NAME] in (API, SWEEP)]
    route = ["Ingress"] if cfg_of(stack).api.exposure is not None else []  # test_program_api_route.py
    assert sorted(o["kind"] for o in new if o["kind"] not in route) == [
        "ConfigMap",
        "CronJob",
        "Deployment",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
        "ServiceMonitor",
    ]
    for obj in new:
        if obj["kind"] != "ServiceMonitor":  # a CRD: checked against its vendored schema (test_k8s_schemas)
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_no_sweep_without_retention(stack: str) -> None:
    tunables = {**cfg_of(stack).worker.model_dump(by_alias=True), "retentionDays": 0}
    run = run_program(stack, overrides={"worker": tunables})
    assert run.objects("CronJob") == [] and run.outputs["retentionSweep"] == ""
    assert sorted(n["metadata"]["name"] for n in run.objects("NetworkPolicy")) == [APP, API]
    assert run.object("ConfigMap", f"{API}-config")["data"][c.ENV_RETENTION_DAYS] == "0"


def test_store_change_rolls_worker_and_api(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    before = stack_runs[stack]
    tunables = {**cfg_of(stack).worker.model_dump(by_alias=True), "s3UrlTtlSeconds": 60}
    after = run_program(stack, overrides={"worker": tunables})

    def checksums(run: ProgramRun) -> dict[str, str]:
        return {
            d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for d in run.objects("Deployment")
        }

    old, new = checksums(before), checksums(after)
    assert set(old) == set(new) and all(old[n] != new[n] for n in old)
    data = after.object("ConfigMap", f"{API}-config")["data"]
    assert new[API] == hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
