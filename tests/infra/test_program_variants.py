"""The real program with config overrides: canary weights, invalid config, roll-on-change."""

from __future__ import annotations

import time

import pytest

from infra.config.model import load_stack_file
from infra.errors import ConfigError
from infra.tools.snapshot.harness import ROOT, ProgramRun, run_program, stack_file_config

CANARY = "ghcr.io/mobius/preview-worker@sha256:" + "c" * 64


def hpa_bounds(run: ProgramRun) -> dict[str, tuple[int, int]]:
    return {
        h["metadata"]["labels"]["track"]: (h["spec"]["minReplicas"], h["spec"]["maxReplicas"])
        for h in run.objects("HorizontalPodAutoscaler")
        if "track" in h["metadata"]["labels"]  # the worker's tracks, not the API's HPA
    }


@pytest.mark.parametrize(
    ("weight", "expected"),
    [
        (0, {"stable": (4, 20)}),
        (1, {"stable": (3, 19), "canary": (1, 1)}),
        (10, {"stable": (3, 18), "canary": (1, 2)}),
        (50, {"stable": (2, 10), "canary": (2, 10)}),
        (100, {"canary": (4, 20)}),
    ],
)
def test_canary_weight_splits_prod_hpas(weight: int, expected: dict[str, tuple[int, int]]) -> None:
    run = run_program("prod", overrides={"canary": {"weight": weight, "image": CANARY if weight else None}})
    assert hpa_bounds(run) == expected
    workers = [d for d in run.objects("Deployment") if "track" in d["metadata"]["labels"]]  # not the API
    names = {d["metadata"]["labels"]["track"]: d for d in workers}
    assert ("canary" in names) == (weight > 0)
    if weight == 100:
        assert names["stable"]["spec"]["replicas"] == 0  # kept, scaled to zero, ready for promote
    if weight:
        assert names["canary"]["metadata"]["annotations"]["mobius.dev/canary-weight"] == str(weight)
        assert run.outputs["digests"]["canary"] == "sha256:" + "c" * 64
    assert run.outputs["canaryWeight"] == weight


def test_queue_depth_target_is_split_per_track() -> None:
    run = run_program("staging")  # weight 10, queueDepthTarget 50
    targets = {
        h["metadata"]["labels"]["track"]: h["spec"]["metrics"][1]["external"]["target"]["averageValue"]
        for h in run.objects("HorizontalPodAutoscaler")
        if "track" in h["metadata"]["labels"]  # the worker's tracks, not the API's HPA
    }
    # waiting/target_track pods per track == share of waiting/50: 90 % and 10 %.
    assert targets == {"stable": "55556m", "canary": "500"}


def test_invalid_config_fails_before_any_resource() -> None:
    record = ProgramRun("prod")
    with pytest.raises(ConfigError) as info:
        run_program(
            "prod", overrides={"canary": {"weight": 150}, "image": "ghcr.io/x/y:latest"}, record=record
        )
    assert info.value.problems == [
        "image: must be pinned by digest (repository@sha256:<64 hex>), got tag 'ghcr.io/x/y:latest'",
        "canary.weight: must be between 0 and 100, got 150",
    ]
    assert record.resources == []


def test_config_change_changes_the_pod_checksum() -> None:
    before = run_program("dev")
    after = run_program("dev", overrides={"worker": {"concurrency": 3}})
    ann = [
        r.object("Deployment", "preview-worker-stable")["spec"]["template"]["metadata"]["annotations"]
        for r in (before, after)
    ]
    assert ann[0]["checksum/config"] != ann[1]["checksum/config"]
    assert ann[0]["checksum/secret"] == ann[1]["checksum/secret"]


def test_secret_change_changes_the_secret_checksum() -> None:
    config, secret_keys = stack_file_config(ROOT / "Pulumi.dev.yaml")
    other = dict(config, **{"mobius-preview-worker:redisUrl": "redis://other:6379/0"})
    runs = [run_program("dev", c, secret_keys) for c in (config, other)]
    sums = [
        r.object("Deployment", "preview-worker-stable")["spec"]["template"]["metadata"]["annotations"][
            "checksum/secret"
        ]
        for r in runs
    ]
    assert sums[0] != sums[1]


def test_each_stack_runs_fast() -> None:
    run_program("dev")  # warm imports
    for stack in ("dev", "staging", "prod"):
        start = time.perf_counter()
        run_program(stack)
        assert time.perf_counter() - start < 1.0


def test_image_pull_secrets_reach_every_pod_of_the_stack() -> None:
    run = run_program("prod", overrides={"imagePullSecrets": ["ghcr-pull", "mirror.pull"]})
    pods = [d["spec"]["template"]["spec"] for d in run.objects("Deployment")]
    pods += [c["spec"]["jobTemplate"]["spec"]["template"]["spec"] for c in run.objects("CronJob")]
    assert len(pods) >= 3  # stable worker, API, sweep
    assert all(p["imagePullSecrets"] == [{"name": "ghcr-pull"}, {"name": "mirror.pull"}] for p in pods)
    plain = run_program("prod")
    assert all("imagePullSecrets" not in d["spec"]["template"]["spec"] for d in plain.objects("Deployment"))


def test_path_sources_are_off_unless_a_stack_opts_in() -> None:
    def flags(run: ProgramRun) -> set[str]:
        return {cm["data"]["PREVIEW_PATH_SOURCES"] for cm in run.objects("ConfigMap")}

    assert flags(run_program("prod")) == {"off"}  # the worker's and the API's ConfigMaps
    assert flags(run_program("prod", overrides={"pathSources": True})) == {"on"}
    assert len(run_program("prod").objects("ConfigMap")) == 2


def test_source_hosts_reach_the_worker_with_their_ports() -> None:
    """#16 item 9: the port used to be dropped, and a bare host then allowed every port."""
    hosts = [{"host": "cdn.example", "cidrs": ["198.51.100.0/24"], "port": 8443},
             {"host": "assets.example", "cidrs": ["203.0.113.0/24"]}]  # fmt: skip
    run = run_program("prod", overrides={"sourceHosts": hosts})
    worker = run.object("ConfigMap", "preview-worker-config")
    assert worker["data"]["PREVIEW_SOURCE_HOSTS"] == "cdn.example:8443,assets.example:443"


def test_job_retention_reaches_the_worker_with_the_workers_own_defaults() -> None:
    from worker.settings import Settings

    worker = run_program("prod").object("ConfigMap", "preview-worker-config")
    keep = {k: v for k, v in worker["data"].items() if k.startswith("PREVIEW_KEEP_")}
    defaults = Settings.model_fields
    assert keep == {
        "PREVIEW_KEEP_COMPLETED_SECONDS": str(defaults["keep_completed_seconds"].default),
        "PREVIEW_KEEP_COMPLETED_COUNT": str(defaults["keep_completed_count"].default),
        "PREVIEW_KEEP_FAILED_SECONDS": str(defaults["keep_failed_seconds"].default),
        "PREVIEW_KEEP_FAILED_COUNT": str(defaults["keep_failed_count"].default),
        "PREVIEW_KEEP_DLQ_SECONDS": str(defaults["keep_dlq_seconds"].default),
        "PREVIEW_KEEP_DLQ_COUNT": str(defaults["keep_dlq_count"].default),
    }
    assert keep["PREVIEW_KEEP_COMPLETED_SECONDS"] == "86400" and keep["PREVIEW_KEEP_FAILED_COUNT"] == "5000"
    custom = run_program("prod", overrides={"worker": {"keepCompletedCount": 50}})
    worker = custom.object("ConfigMap", "preview-worker-config")
    assert worker["data"]["PREVIEW_KEEP_COMPLETED_COUNT"] == "50"


def test_a_sentinel_port_opens_egress_to_the_sentinels_for_every_redis_client() -> None:
    # Issue 14, part 3: with REDIS_URL=redis+sentinel://…, pods ask the sentinels for the master.
    plain = run_program("prod")
    prod = load_stack_file(ROOT / "Pulumi.prod.yaml")
    net = {**prod.network.model_dump(by_alias=True), "redisSentinelPort": 26379}
    run = run_program("prod", overrides={"network": net})
    for name in ("preview-worker", "preview-worker-api"):
        before = plain.object("NetworkPolicy", name)["spec"]["egress"][1]
        after = run.object("NetworkPolicy", name)["spec"]["egress"][1]
        assert [p["port"] for p in before["ports"]] == [6379]
        assert [p["port"] for p in after["ports"]] == [6379, 26379] and after["to"] == before["to"]


def test_keda_mode_declares_a_scaled_object_per_track_and_no_worker_hpa() -> None:
    keda = {"prometheusUrl": "http://prometheus.monitoring.svc:9090", "scaleToZero": True}
    autoscaling = {"provider": "keda", "cpuTarget": None, "queueDepthTarget": 50, "keda": keda}
    run = run_program("staging", overrides={"autoscaling": autoscaling})  # canary weight 10
    assert [h["metadata"]["name"] for h in run.objects("HorizontalPodAutoscaler")] == ["preview-worker-api"]
    scalers = {o["metadata"]["labels"]["track"]: o["spec"] for o in run.objects("ScaledObject")}
    assert set(scalers) == {"stable", "canary"}
    for track, spec in scalers.items():
        assert spec["scaleTargetRef"]["name"] == f"preview-worker-{track}"
        assert spec["minReplicaCount"] == 0  # scale-to-zero
        assert spec["advanced"]["horizontalPodAutoscalerConfig"]["name"] == f"preview-worker-{track}"
        [trigger] = spec["triggers"]  # cpuTarget null: the queue depth alone
        assert trigger["metadata"]["query"] == (
            'max(preview_queue_jobs{namespace="preview-staging",queue="preview-jobs",state="waiting"})'
        )
        assert trigger["metadata"]["ignoreNullValues"] == "false"
    # The same split as the adapter mode's AverageValue (55556m and 500), as KEDA's decimals.
    assert {t: s["triggers"][0]["metadata"]["threshold"] for t, s in scalers.items()} == {
        "stable": "55.556",
        "canary": "500",
    }
    assert (scalers["stable"]["maxReplicaCount"], scalers["canary"]["maxReplicaCount"]) == (
        hpa_bounds(run_program("staging"))["stable"][1],
        hpa_bounds(run_program("staging"))["canary"][1],
    )
    assert run.outputs["autoscaler"] == "keda" and run.outputs["scaleToZero"] is True


def test_keda_mode_keeps_the_cpu_trigger_and_the_floor_without_scale_to_zero() -> None:
    keda = {"prometheusUrl": "http://prometheus.monitoring.svc:9090"}
    run = run_program(
        "prod", overrides={"autoscaling": {"provider": "keda", "queueDepthTarget": 50, "keda": keda}}
    )
    [spec] = [o["spec"] for o in run.objects("ScaledObject")]
    assert spec["minReplicaCount"] == 4
    assert [t["type"] for t in spec["triggers"]] == ["prometheus", "cpu"]
    assert spec["triggers"][1]["metadata"] == {"value": "70"}


def test_redis_ca_is_mounted_read_only_where_redis_url_names_it_in_every_pod() -> None:
    from worker.constants import REDIS_CA_PATH

    run = run_program("staging", overrides={"redisCa": {"configMap": "redis-tls", "key": "tls-ca.pem"}})
    templates = [d["spec"]["template"]["spec"] for d in run.objects("Deployment")]
    templates += [j["spec"]["jobTemplate"]["spec"]["template"]["spec"] for j in run.objects("CronJob")]
    assert len(templates) == 4  # stable, canary, API, retention sweep
    folder, name = REDIS_CA_PATH.rsplit("/", 1)
    for spec in templates:
        (volume,) = [v for v in spec["volumes"] if "configMap" in v]
        assert volume["configMap"] == {"name": "redis-tls", "items": [{"key": "tls-ca.pem", "path": name}]}
        (box,) = spec["containers"]
        (mount,) = [m for m in box["volumeMounts"] if m["name"] == volume["name"]]
        assert (mount["mountPath"], mount["readOnly"]) == (folder, True)
    assert not any(
        "configMap" in v
        for d in run_program("staging").objects("Deployment")
        for v in d["spec"]["template"]["spec"]["volumes"]
    )


def test_a_bad_redis_ca_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"redisCa\.configMap: must be a DNS-1123 label"):
        run_program("staging", overrides={"redisCa": {"configMap": "Redis_CA"}})
    with pytest.raises(ConfigError, match=r"redisCa\.key: must be a ConfigMap key"):
        run_program("staging", overrides={"redisCa": {"configMap": "redis-ca", "key": "../ca"}})
