"""The rendered alert rules under promtool: `check rules`, and `test rules` showing each alert
firing and not firing on synthetic series (thresholds from the staging stack file)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config.model import Slos, load_stack_file
from infra.manifests.observability.alerts import rule_groups
from infra.tools.snapshot.harness import ROOT, ProgramRun
from worker import constants as c

# Staging's thresholds (backlog 200, p95 20 s, for 10m) without its SLOs: a stack without an
# availability SLO keeps the failure-ratio threshold (the SLOs' own tests: test_slo_rules.py).
CFG = load_stack_file(ROOT / "Pulumi.staging.yaml").model_copy(update={"slos": Slos()})
NS = f'namespace="{CFG.namespace}"'
BASE = {"service": "preview-worker"}


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: install Debian's prometheus package (deps/apt-base.txt)"
    return path


#: Each track's release, as the stack sets it (the image digest's short form).
RELEASE = {track: f"sha256-{track[:1] * 12}" for track in c.TRACKS}


def own(track: str) -> str:
    """The labels a process of ``track`` puts on every series: its track and its release."""
    return f'track="{track}",release="{RELEASE[track]}"'


def outcomes(track: str, outcome: str, per_min: int) -> dict[str, str]:
    name = f'{c.METRIC_JOB_OUTCOMES}{{{NS},{own(track)},outcome="{outcome}",pod="{track}-0"}}'
    return {"series": name, "values": f"0+{per_min}x60"}


def gauge(metric: str, values: str, **labels: str) -> dict[str, str]:
    if "track" in labels:  # a worker's own series: its release too
        labels = {**labels, "release": RELEASE[labels["track"]]}
    extra = "".join(f',{k}="{v}"' for k, v in labels.items())
    return {"series": f"{metric}{{{NS}{extra}}}", "values": values}


def buckets(track: str, counts: dict[str, int]) -> list[dict[str, str]]:
    return [
        {"series": f'{c.METRIC_JOB_DURATION}_bucket{{{NS},{own(track)},le="{le}"}}', "values": f"0+{n}x60"}
        for le, n in counts.items()
    ]


def api_requests(status: int, per_min: int, route: str = "/api/preview/job") -> dict[str, str]:
    labels = f'{NS},{own("stable")},route="{route}",method="POST",status="{status}",pod="api-0"'
    return {"series": f"{c.METRIC_API_REQUESTS}{{{labels}}}", "values": f"0+{per_min}x60"}


def enqueue_buckets(counts: dict[str, int]) -> list[dict[str, str]]:
    return [
        {
            "series": f"{c.METRIC_API_ENQUEUE_DURATION}_bucket"
            f'{{{NS},{own("stable")},le="{le}",pod="api-{i}"}}',
            "values": f"0+{n}x60",
        }
        for le, n in counts.items()
        for i in (0, 1)
    ]


# alert -> (series that make it fire, labels it fires with, series that keep it quiet)
CASES: dict[str, tuple[list[dict[str, str]], dict[str, str], list[dict[str, str]]]] = {
    "PreviewWorkerHighFailureRate": (
        [outcomes("stable", "completed", 60), outcomes("stable", "failed", 10)],
        {"severity": "critical", "track": "stable"},
        # Retries and DLQ moves are counted besides "failed"; they must not count as more failures.
        [
            outcomes("stable", "completed", 60),
            outcomes("stable", "failed", 1),
            outcomes("stable", "retried", 30),
            outcomes("stable", "dlq", 1),
        ],
    ),
    "PreviewQueueBacklogGrowing": (
        [
            gauge(c.METRIC_QUEUE_DEPTH, "100+10x60", state="waiting", pod="a"),
            gauge(c.METRIC_QUEUE_DEPTH, "100+10x60", state="waiting", pod="b"),
        ],
        {"severity": "warning"},
        [gauge(c.METRIC_QUEUE_DEPTH, "300x60", state="waiting", pod="a")],  # big but not growing
    ),
    "PreviewWorkerDown": (
        [
            gauge("up", "0x60", job="preview-worker", pod="a"),
            gauge("up", "0x60", job="preview-worker", pod="b"),
        ],
        {"severity": "critical"},
        [
            gauge("up", "0x60", job="preview-worker", pod="a"),
            gauge("up", "1x60", job="preview-worker", pod="b"),
        ],
    ),
    "PreviewNoActiveConsumers": (
        [
            gauge(c.METRIC_QUEUE_DEPTH, "5x60", state="waiting", pod="a"),
            gauge(c.METRIC_JOBS_IN_FLIGHT, "0x60", track="stable", pod="a"),
        ],
        {"severity": "critical"},
        [
            gauge(c.METRIC_QUEUE_DEPTH, "5x60", state="waiting", pod="a"),
            gauge(c.METRIC_JOBS_IN_FLIGHT, "2x60", track="stable", pod="a"),
        ],
    ),
    "PreviewDLQGrowing": (
        [gauge(c.METRIC_QUEUE_DEPTH, "0+1x60", state="dlq", pod="a")],
        {"severity": "warning"},
        [gauge(c.METRIC_QUEUE_DEPTH, "3x60", state="dlq", pod="a")],
    ),
    "PreviewHousekeepingFailing": (
        [gauge(c.METRIC_HOUSEKEEPING_FAILING, "0x5 1x55", track="canary", pod="a")],
        {"severity": "warning", "track": "canary"},
        # One pod's blip (a round or two failing, e.g. a Redis restart) stays quiet.
        [gauge(c.METRIC_HOUSEKEEPING_FAILING, "0x20 1x5 0x35", track="canary", pod="a")],
    ),
    "PreviewJobFinishesUnrecorded": (
        [outcomes("canary", "completed", 30), outcomes("canary", "unrecorded", 1)],
        {"severity": "warning", "track": "canary"},
        # One lost lock (a Redis failover) is a blip: it leaves the window long before `for` ends.
        [
            outcomes("canary", "completed", 30),
            {**outcomes("canary", "unrecorded", 0), "values": "0x5 1x55"},
        ],
    ),
    "PreviewCanaryFailureRateWorse": (
        [
            outcomes("canary", "completed", 50),
            outcomes("canary", "failed", 10),
            outcomes("canary", "invalid", 0),
            outcomes("stable", "completed", 100),
            outcomes("stable", "failed", 1),
            outcomes("stable", "invalid", 0),
        ],
        {
            "severity": "critical",
            "namespace": CFG.namespace,
            "service": "preview-worker",
            "slo": "availability",
        },
        # The canary's producers send more invalid jobs: the availability SLI leaves them out.
        [
            outcomes("canary", "completed", 90),
            outcomes("canary", "failed", 11),
            outcomes("canary", "invalid", 10),
            outcomes("stable", "completed", 100),
            outcomes("stable", "failed", 1),
            outcomes("stable", "invalid", 0),
        ],
    ),
    "PreviewApiUnavailable": (
        [gauge("kube_deployment_status_replicas_available", "0x60", deployment="preview-worker-api")],
        {"severity": "critical"},
        # The worker's Deployments at 0 are other alerts' business; the API at 1 is available.
        [
            gauge("kube_deployment_status_replicas_available", "1x60", deployment="preview-worker-api"),
            gauge("kube_deployment_status_replicas_available", "0x60", deployment="preview-worker-canary"),
        ],
    ),
    "PreviewApiHighErrorRate": (
        [api_requests(201, 90), api_requests(503, 10)],  # 10 % 5xx
        {"severity": "critical"},
        # 4xx are the producers' mistakes, not the API's: a flood of 400s stays quiet.
        [api_requests(201, 99), api_requests(503, 1), api_requests(400, 500)],
    ),
    "PreviewApiSlowEnqueue": (
        enqueue_buckets({"0.25": 0, "1": 10, "+Inf": 10}),  # all between 0.25 s and 1 s, on two pods
        {"severity": "warning"},
        enqueue_buckets({"0.05": 10, "1": 10, "+Inf": 10}),
    ),
    "PreviewJobDurationP95High": (
        buckets("canary", {"10": 0, "30": 10, "60": 10, "+Inf": 10}),  # all between 10 s and 30 s
        {"severity": "warning", "track": "canary"},
        buckets("canary", {"1": 10, "30": 10, "60": 10, "+Inf": 10}),
    ),
}


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule_groups(CFG)}))
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_check_rules_on_rendered_prometheus_rule(
    stack_runs: dict[str, ProgramRun], stack: str, tmp_path: Path
) -> None:
    (rule,) = stack_runs[stack].objects("PrometheusRule")
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    rules = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
    alerts = {r["alert"] for r in rules if "alert" in r}
    burn = {"PreviewAvailabilityBudgetBurn", "PreviewLatencyBudgetBurn"}  # every stack declares both SLOs
    assert alerts == (set(CASES) - {"PreviewWorkerHighFailureRate"}) | burn


def annotations(alert: str, labels: dict[str, str], value: str) -> dict[str, str]:
    (rule,) = [r for g in rule_groups(CFG) for r in g["rules"] if r.get("alert") == alert]
    out: dict[str, str] = {}
    for key, text in rule["annotations"].items():
        for template, replacement in (
            ("{{ $labels.track }}", labels.get("track", "")),
            ("{{ $value }}", value),
        ):
            text = text.replace(template, replacement)
        out[key] = text
    return out


def unit_test(alert: str, series: list[dict[str, str]], fires: dict[str, str] | None) -> dict[str, Any]:
    exp = [] if fires is None else [{"exp_labels": {**BASE, **fires}}]
    return {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [{"eval_time": "40m", "alertname": alert, "exp_alerts": exp}],
    }


@pytest.mark.parametrize("alert", sorted(CASES))
def test_each_alert_fires_and_stays_quiet(alert: str, rules_file: Path, tmp_path: Path) -> None:
    firing, labels, quiet = CASES[alert]
    # promtool compares annotations too; the unit test checks expressions and labels,
    # so it runs on the same rules with annotations removed (check rules covers their templates).
    bare = {
        "groups": [
            {**g, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]}
            for g in yaml.safe_load(rules_file.read_text())["groups"]
        ]
    }
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(bare))
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [unit_test(alert, firing, labels), unit_test(alert, quiet, None)],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(tests))
    result = run_promtool("test", "rules", str(tmp_path / "test.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_worker_down_fires_when_nothing_is_scraped(tmp_path: Path, rules_file: Path) -> None:
    tests = {
        "rule_files": [str(rules_file)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [gauge("up", "1x60", job="other", pod="x")],
                "alert_rule_test": [
                    {
                        "eval_time": "40m",
                        "alertname": "PreviewWorkerDown",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    **BASE,
                                    "severity": "critical",
                                    "namespace": CFG.namespace,
                                    "job": "preview-worker",
                                },
                                "exp_annotations": annotations("PreviewWorkerDown", {}, "1"),
                            }
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(tests))
    result = run_promtool("test", "rules", str(tmp_path / "test.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_expectation_fails(tmp_path: Path, rules_file: Path) -> None:
    firing, _, _ = CASES["PreviewDLQGrowing"]
    tests = {
        "rule_files": [str(rules_file)],
        "evaluation_interval": "1m",
        "tests": [unit_test("PreviewDLQGrowing", firing, None)],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(tests))
    result = run_promtool("test", "rules", str(tmp_path / "test.yaml"))
    assert result.returncode == 1
    assert "PreviewDLQGrowing" in result.stdout + result.stderr


def write_bare_rules(cfg: Any, path: Path) -> None:
    """``cfg``'s rules without annotations: promtool's unit tests then check expressions and labels."""
    groups = rule_groups(cfg)
    for group in groups:
        group["rules"] = [{k: v for k, v in r.items() if k != "annotations"} for r in group["rules"]]
    path.write_text(yaml.safe_dump({"groups": groups}))


def test_a_track_kedas_scaled_to_zero_is_down_only_while_jobs_wait(tmp_path: Path) -> None:
    keda = {"prometheusUrl": "http://prometheus:9090", "scaleToZero": True, "activationThreshold": 2}
    autoscaling = {"provider": "keda", "queueDepthTarget": 50, "keda": keda}
    to_zero = CFG.model_copy(update={"autoscaling": CFG.autoscaling.model_validate(autoscaling)})
    api_up = gauge("up", "1x60", job="preview-worker-api", pod="api-0")  # no worker is scraped at all

    def case(waiting: str, fires: bool) -> dict[str, Any]:
        depth = gauge(c.METRIC_QUEUE_DEPTH, waiting, state="waiting", pod="api-0")  # from the job API
        labels = {"severity": "critical", "namespace": CFG.namespace, "job": "preview-worker"}
        return unit_test("PreviewWorkerDown", [api_up, depth], labels if fires else None)

    for cfg, cases in (
        (to_zero, [case("0x60", False), case("2x60", False), case("3x60", True)]),  # above the threshold
        (CFG, [case("0x60", True)]),  # without scale-to-zero the same idle state is an outage
    ):
        write_bare_rules(cfg, tmp_path / "rules.yaml")
        tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": cases}
        (tmp_path / "test.yaml").write_text(yaml.safe_dump(tests))
        result = run_promtool("test", "rules", str(tmp_path / "test.yaml"))
        assert result.returncode == 0, result.stdout + result.stderr
