"""The real program (``__main__.py``) under Pulumi's mocks, for every committed stack file:
each test asserts one property of what the stack declares."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
from conftest import STACKS

from infra.config.model import IMAGE_RE, load_stack_file
from infra.manifests.common import LABEL_VERSION
from infra.manifests.scaling.canary import plan
from infra.tools.snapshot.harness import ROOT, ProgramRun
from worker import constants as c

APP = "preview-worker"
pytestmark = pytest.mark.parametrize("stack", STACKS)


def cfg_of(stack: str) -> Any:
    return load_stack_file(ROOT / f"Pulumi.{stack}.yaml")


def deployments(run: ProgramRun) -> list[dict[str, Any]]:
    """The worker's Deployments (one per track); the API's is tested in test_program_api."""
    return [d for d in run.objects("Deployment") if d["metadata"]["labels"]["app.kubernetes.io/name"] == APP]


def pod(d: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = d["spec"]["template"]["spec"]
    return spec


def pods_of(run: ProgramRun) -> list[dict[str, Any]]:
    """Every pod spec of the stack: both tracks', the API's and the retention sweep's."""
    specs = [d["spec"]["template"]["spec"] for d in run.objects("Deployment")]
    return specs + [j["spec"]["jobTemplate"]["spec"]["template"]["spec"] for j in run.objects("CronJob")]


def container(d: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod(d)["containers"]
    return dict(only)


def test_images_pinned_by_digest_per_track(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    cfg, run = cfg_of(stack), stack_runs[stack]
    images = {d["metadata"]["labels"]["track"]: container(d)["image"] for d in deployments(run)}
    assert all(IMAGE_RE.fullmatch(i) for i in images.values())
    assert images["stable"] == cfg.image
    assert images.get("canary") == (cfg.canary.image if cfg.effective_canary_weight else None)
    assert run.outputs["digests"] == {t: i.split("@")[1] for t, i in images.items()}


def test_requests_and_limits_from_config(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    r = cfg_of(stack).resources
    for d in deployments(stack_runs[stack]):
        # ephemeral-storage: the data emptyDir's render budget (1Gi) plus 128Mi of logs.
        assert container(d)["resources"] == {
            "requests": {"cpu": r.requests.cpu, "memory": r.requests.memory, "ephemeral-storage": "1152Mi"},
            "limits": {"cpu": r.limits.cpu, "memory": r.limits.memory, "ephemeral-storage": "1152Mi"},
        }
        data = next(v for v in d["spec"]["template"]["spec"]["volumes"] if v["name"] == "data")
        assert data["emptyDir"] == {"sizeLimit": "1Gi"}


def test_pod_hardening(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    for d in deployments(stack_runs[stack]):
        p, ctr = pod(d), container(d)
        assert p["securityContext"]["runAsNonRoot"] is True and p["securityContext"]["runAsUser"] != 0
        assert p["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert p["automountServiceAccountToken"] is False
        sc = ctr["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        # The writable places the worker needs are emptyDir volumes.
        # (Anything else, the vault Secret's files, is mounted read-only.)
        mounts = {m["mountPath"]: m["name"] for m in ctr["volumeMounts"] if not m.get("readOnly")}
        volumes = {v["name"]: v for v in p["volumes"]}
        assert set(mounts) == {"/data", "/tmp"}
        assert all("emptyDir" in volumes[name] for name in mounts.values())


def test_probes_use_shared_paths_and_port(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    for d in deployments(stack_runs[stack]):
        ctr = container(d)
        assert ctr["ports"] == [
            {"name": c.METRICS_PORT_NAME, "containerPort": c.METRICS_PORT, "protocol": "TCP"}
        ]
        assert ctr["livenessProbe"]["httpGet"] == {"path": c.LIVENESS_PATH, "port": c.METRICS_PORT_NAME}
        assert ctr["readinessProbe"]["httpGet"] == {"path": c.READINESS_PATH, "port": c.METRICS_PORT_NAME}
        assert ctr["startupProbe"]["httpGet"]["path"] == c.LIVENESS_PATH


def test_grace_period_exceeds_drain_and_rollout_keeps_capacity(
    stack_runs: dict[str, ProgramRun], stack: str
) -> None:
    run = stack_runs[stack]
    drain = float(run.object("ConfigMap", f"{APP}-config")["data"][c.ENV_DRAIN_SECONDS])
    for d in deployments(run):
        assert pod(d)["terminationGracePeriodSeconds"] > drain
        assert d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        keys = {t["topologyKey"] for t in pod(d)["topologySpreadConstraints"]}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}


def test_hpa_per_track_split_by_weight(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    cfg, run = cfg_of(stack), stack_runs[stack]
    p = plan(cfg.replicas.min, cfg.replicas.max, cfg.effective_canary_weight)
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h["spec"] for h in run.objects("HorizontalPodAutoscaler")}
    for d in deployments(run):
        track, name = d["metadata"]["labels"]["track"], d["metadata"]["name"]
        assert (hpas[name]["minReplicas"], hpas[name]["maxReplicas"]) == (
            p.bounds(track).min,
            p.bounds(track).max,
        )
        cpu = hpas[name]["metrics"][0]["resource"]["target"]
        assert cpu == {"type": "Utilization", "averageUtilization": cfg.autoscaling.cpu_target}
        assert "replicas" not in d["spec"]  # the HPA owns the replica count
    assert run.outputs["replicaSplit"]["min"] == {"stable": p.minimum.stable, "canary": p.minimum.canary}


def test_pdb_never_blocks_drains(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    run = stack_runs[stack]
    pdb = run.object("PodDisruptionBudget", APP)
    assert pdb["spec"]["maxUnavailable"] >= 1 and "minAvailable" not in pdb["spec"]
    for d in deployments(run):
        pod_labels = d["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_network_policy_is_exact(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    cfg, run = cfg_of(stack), stack_runs[stack]
    spec = run.object("NetworkPolicy", APP)["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [
        {
            "from": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": cfg.monitoring.namespace}
                    }
                }
            ],
            "ports": [{"protocol": "TCP", "port": c.METRICS_PORT}],
        }
    ]
    ports = [[p["port"] for p in rule["ports"]] for rule in spec["egress"]]
    net = cfg.network
    assert ports == [[53, 53], [net.redis_port], [net.s3_port], *[[h.port] for h in cfg.source_hosts]]
    s3_peers = [
        p.get("ipBlock", {}).get("cidr") or p["namespaceSelector"]["matchLabels"]
        for p in spec["egress"][2]["to"]
    ]
    s3_namespaces = [{"kubernetes.io/metadata.name": net.s3_namespace}] if net.s3_namespace else []
    assert s3_peers == [*s3_namespaces, *net.s3_cidrs]
    cidrs = [peer["ipBlock"]["cidr"] for rule in spec["egress"][3:] for peer in rule["to"]]
    assert cidrs == [cidr for h in cfg.source_hosts for cidr in h.cidrs]


def test_labels_on_every_object(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    for obj in stack_runs[stack].objects():
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] in {APP, f"{APP}-api", f"{APP}-sweep"}, obj["kind"]
        assert labels["app.kubernetes.io/instance"] == stack
        assert labels["app.kubernetes.io/managed-by"] == "pulumi"
    for d in deployments(stack_runs[stack]):
        track = d["metadata"]["labels"]["track"]
        assert d["spec"]["template"]["metadata"]["labels"]["track"] == track
        assert {"name": c.ENV_TRACK, "value": track} in container(d)["env"]
        # The `release` label of the track's series: its image's digest, as the pods' version label.
        release = {"name": c.ENV_RELEASE, "value": d["metadata"]["labels"][LABEL_VERSION]}
        assert release in container(d)["env"]
        assert re.fullmatch(c.RELEASE_PATTERN, release["value"])


def test_config_checksum_annotation(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    run = stack_runs[stack]
    data = run.object("ConfigMap", f"{APP}-config")["data"]
    expected = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    assert run.outputs["configChecksum"] == expected
    for d in deployments(run):
        annotations = d["spec"]["template"]["metadata"]["annotations"]
        assert annotations["checksum/config"] == expected
        assert len(annotations["checksum/secret"]) == 64


def test_no_secret_in_configmap_or_plain_state(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    run = stack_runs[stack]
    data = run.object("ConfigMap", f"{APP}-config")["data"]
    assert not set(data) & c.SECRET_ENV_VARS
    assert set(data) <= {v for k, v in vars(c).items() if k.startswith("ENV_")}
    everything = json.dumps([r.inputs for r in run.resources if r.inputs.get("kind") != "Secret"])
    assert "mock-secret-value-of" not in everything


def test_secret_source_per_provider(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    cfg, run = cfg_of(stack), stack_runs[stack]
    env_from = [e for d in deployments(run) for e in container(d)["envFrom"]]
    if cfg.redis_url is not None:
        secret = run.resource("Secret", f"{APP}-env")
        assert secret.has_secret("stringData", c.ENV_REDIS_URL)  # encrypted in state, masked in output
        assert {"secretRef": {"name": f"{APP}-env"}} in env_from
    else:
        assert run.objects("Secret") == []
    if cfg.secrets.provider == "external-secrets" and cfg.secrets.keys:
        (es,) = run.objects("ExternalSecret")
        assert es["spec"]["data"] == [
            {"secretKey": env, "remoteRef": {"key": cfg.secrets.path, "property": prop}}
            for env, prop in sorted(cfg.secrets.keys.items())
        ]
        assert es["spec"]["secretStoreRef"] == {
            "name": cfg.secrets.store_name,
            "kind": cfg.secrets.store_kind,
        }
        # Mounted as files, never env: the worker re-reads them when the operator rotates them.
        target = es["spec"]["target"]["name"]
        assert {"secretRef": {"name": target}} not in env_from
        for pod in pods_of(run):
            (volume,) = [v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == target]
            for box in pod["containers"]:
                (mount,) = [m for m in box["volumeMounts"] if m["name"] == volume["name"]]
                assert mount["readOnly"] is True
                assert {"name": c.ENV_SECRETS_DIR, "value": mount["mountPath"]} in box["env"]


def test_alerts_present_with_runbooks(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    cfg, run = cfg_of(stack), stack_runs[stack]
    (rule,) = run.objects("PrometheusRule")
    rules = [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert {r["alert"] for r in rules} == {
        # Every committed stack declares both SLOs: their burn rates page, not a failure-ratio threshold.
        "PreviewAvailabilityBudgetBurn",
        "PreviewLatencyBudgetBurn",
        "PreviewQueueBacklogGrowing",
        "PreviewWorkerDown",
        "PreviewNoActiveConsumers",
        "PreviewDLQGrowing",
        "PreviewHousekeepingFailing",
        "PreviewJobFinishesUnrecorded",
        "PreviewCanaryFailureRateWorse",
        "PreviewJobDurationP95High",
        "PreviewApiUnavailable",
        "PreviewApiHighErrorRate",
        "PreviewApiSlowEnqueue",
    }
    for r in rules:
        assert r["labels"]["severity"] in {"critical", "warning"}
        assert r["annotations"]["summary"] and r["annotations"]["description"]
        assert r["annotations"]["runbook_url"] == f"{cfg.monitoring.runbook_base_url}/{r['alert']}.md"
        assert f'namespace="{cfg.namespace}"' in r["expr"]
        # The URL points into this repository's docs/runbooks/: the page must exist.
        assert (ROOT / "docs" / "runbooks" / f"{r['alert']}.md").is_file(), r["alert"]


def test_service_monitor_scrapes_the_service(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    run = stack_runs[stack]
    sm = run.object("ServiceMonitor", APP)
    svc = run.object("Service", APP)
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"] == c.METRICS_PORT_NAME
    assert sm["spec"]["endpoints"][0]["path"] == c.METRICS_PATH
    assert run.object("ServiceAccount", APP)["automountServiceAccountToken"] is False


def test_outputs_and_release_id(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    cfg, run = cfg_of(stack), stack_runs[stack]
    out = run.outputs
    assert out["namespace"] == cfg.namespace
    assert out["canaryWeight"] == cfg.effective_canary_weight
    assert set(out["deployments"].values()) == {d["metadata"]["name"] for d in deployments(run)}
    for d in deployments(run):
        if cfg.release_id:
            assert d["metadata"]["annotations"]["mobius.dev/release-id"] == cfg.release_id
    assert all(o["metadata"]["namespace"] == cfg.namespace for o in run.objects() if o["kind"] != "Namespace")


def test_every_resource_is_parented_under_the_stack_component(
    stack_runs: dict[str, ProgramRun], stack: str
) -> None:
    urns = stack_runs[stack].urns
    parents = {
        urn.split("::")[2].rsplit("$", 1)[0].rsplit("$", 1)[-1]
        for urn in urns
        if "kubernetes:" in urn and "pulumi:providers:" not in urn
    }
    assert parents <= {
        "mobius:preview:Stack",
        "mobius:preview:Secrets",
        "mobius:preview:Worker",
        "mobius:preview:Monitoring",
        "mobius:preview:Api",
    }
    assert any(urn.split("::")[2].endswith("pulumi:pulumi:Stack$mobius:preview:Stack") for urn in urns)


def test_every_namespaced_object_waits_for_its_namespace(
    stack_runs: dict[str, ProgramRun], stack: str
) -> None:
    # Pulumi does not pass a component's depends_on to its children; each object must carry it.
    run = stack_runs[stack]
    for r in run.resources:
        if r.custom and r.type.startswith("kubernetes:") and r.inputs.get("kind") != "Namespace":
            deps = [urn.rsplit("::", 1)[-1] for urn in run.dependencies[r.name]]
            assert "preview-worker-namespace" in deps, r.name


def test_render_processes_and_their_budget_fit_the_memory_limit(
    stack_runs: dict[str, ProgramRun], stack: str
) -> None:
    # Issue 16, item 7: a 7000x7000 WebP decoded to 1 GiB, over every stack's limit. The worker
    # caps each render process at its budget; the stack sizes the budgets to fit the limit.
    from infra.config.fields.quantities import quantity
    from worker.settings import Settings

    cfg, run = cfg_of(stack), stack_runs[stack]
    data = run.object("ConfigMap", f"{APP}-config")["data"]
    processes, budget = int(data[c.ENV_RENDER_PROCESSES]), int(data[c.ENV_RENDER_MEMORY_BYTES])
    assert (
        1 <= processes <= min(cfg.worker.concurrency, max(1, int(quantity(cfg.resources.limits.cpu, "cpu"))))
    )
    limit = quantity(cfg.resources.limits.memory, "memory")
    used = c.WORKER_BASE_MEMORY_BYTES + processes * (c.RENDER_PROCESS_BASE_MEMORY_BYTES + budget)
    assert used <= limit
    settings = Settings.model_validate(data)  # the worker takes what the stack sends
    assert (settings.render_pool_size, settings.render_memory_bytes) == (processes, budget)


def test_the_worker_derives_the_same_inline_cap_from_the_redis_budget(
    stack_runs: dict[str, ProgramRun], stack: str
) -> None:
    # Issue 16, item 10: every job Redis holds fits the stack's redisBudget at the cap in force.
    from worker.queue.budget import job_bytes
    from worker.settings import Settings

    cfg, data = cfg_of(stack), stack_runs[stack].object("ConfigMap", f"{APP}-config")["data"]
    settings = Settings.model_validate(data)
    assert settings.inline_bytes == cfg.inline_bytes > 64 * 2**10
    assert settings.redis_budget_bytes == cfg.redis_budget_bytes
    assert settings.held_jobs.jobs * job_bytes(settings.inline_bytes) <= settings.redis_budget_bytes
