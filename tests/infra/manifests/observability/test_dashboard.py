"""The Grafana dashboard (infra/manifests/observability/dashboard.py): its committed copy is current,
it is a dashboard the SDK's own model reads back unchanged, each runbook's panel is on it, every
query reads the template variables, and the stack declares it as the Grafana sidecar's ConfigMap
only when ``monitoring.dashboard.enabled``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from infra.config.model import ConfigError, load_stack_file, parse_config
from infra.config.release_marks import HISTORY_DIR, history_file, read_marks
from infra.errors import HistoryError
from infra.manifests.observability import dashboard as d
from infra.manifests.observability import panels
from infra.tools.snapshot.harness import ROOT, run_program, stack_file_config
from worker import constants as c


def test_the_committed_copy_is_current() -> None:
    assert d.COMMITTED.read_text(encoding="utf-8") == d.render(), (
        "run: python -m infra.manifests.observability.dashboard --write"
    )
    assert d.main(["--check"]) == 0


def test_the_sdk_model_reads_the_json_back_unchanged() -> None:
    """The SDK ships no JSON schema: its model types are the schema, so the JSON must round-trip."""
    data = json.loads(d.COMMITTED.read_text(encoding="utf-8"))
    again = json.loads(json.dumps(Dashboard.from_json(data), cls=JSONEncoder))
    assert again == data


def test_each_declared_panel_is_there_once_and_every_query_reads_the_variables() -> None:
    data = d.dashboard()
    titles = [panel["title"] for panel in data["panels"]]
    assert sorted(titles) == sorted(panels.PANELS)
    names = {v["name"] for v in data["templating"]["list"]}
    assert {d.NAMESPACE, d.QUEUE, d.DATASOURCE} <= names
    for panel in data["panels"]:
        assert panel["datasource"]["uid"] == f"${d.DATASOURCE}"
        for target in panel["targets"]:
            assert f"${d.NAMESPACE}" in target["expr"], (panel["title"], target["expr"])
    # The queue (its depth, its DLQ, Redis) is one for both tracks; pods split by Deployment (one per track).
    shared = {panels.QUEUE_DEPTH, panels.DLQ, panels.REDIS_BUDGET, panels.PODS, panels.ERROR_BUDGET}
    worker_panels = set(panels.PANELS) - shared
    for panel in data["panels"]:
        if panel["title"] in worker_panels:
            assert any(c.LABEL_TRACK in t["expr"] for t in panel["targets"]), panel["title"]
    (releases,) = data["annotations"]["list"]
    assert c.LABEL_RELEASE in releases["expr"]


def test_the_module_main_refuses_unknown_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert d.main(["--bogus"]) == 2
    assert "usage" in capsys.readouterr().err


def _monitoring(**dashboard: Any) -> dict[str, Any]:
    config, _ = stack_file_config(ROOT / "Pulumi.prod.yaml")
    return {**config["mobius-preview-worker:monitoring"], "dashboard": dashboard}


def test_the_stack_declares_the_configmap_only_when_enabled() -> None:
    off = run_program("prod")
    assert [o for o in off.objects("ConfigMap") if d.FILE in o.get("data", {})] == []
    on = run_program("prod", overrides={"monitoring": _monitoring(enabled=True, labels={"team": "media"})})
    (cm,) = [o for o in on.objects("ConfigMap") if d.FILE in o.get("data", {})]
    cfg = load_stack_file(ROOT / "Pulumi.prod.yaml")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["labels"]["team"] == "media"
    assert cm["metadata"]["namespace"] == cfg.monitoring.namespace
    board = json.loads(cm["data"][d.FILE])
    assert board == d.dashboard(cfg.redis_budget_bytes)
    (redis,) = [p for p in board["panels"] if p["title"] == panels.REDIS_BUDGET]
    assert str(cfg.redis_budget_bytes) in redis["targets"][0]["expr"]


@pytest.mark.parametrize(
    ("dashboard", "needle"),
    [
        ({"labels": {"bad key!": "1"}}, "monitoring.dashboard.labels"),
        ({"labels": {"team": "no spaces"}}, "monitoring.dashboard.labels"),
        ({"namespace": "Not_DNS"}, "monitoring.dashboard.namespace"),
        ({"enabled": True, "color": "red"}, "monitoring.dashboard.color"),
    ],
)
def test_a_bad_dashboard_section_is_named(dashboard: dict[str, Any], needle: str) -> None:
    raw = {k.split(":", 1)[1]: v for k, v in stack_file_config(ROOT / "Pulumi.prod.yaml")[0].items()}
    raw["monitoring"] = {**raw["monitoring"], "dashboard": dashboard}
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert any(needle in p for p in info.value.problems), info.value.problems


def test_the_stacks_dashboard_marks_each_release_of_its_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The program reads releases/<stack>.jsonl from its working directory (the repository)."""
    (tmp_path / HISTORY_DIR).mkdir()
    lines = [
        {"id": "r-20261201-01", "action": "promote", "time": "2026-12-01T10:00:00Z"},
        {"id": "r-20261202-01", "action": "rollback", "time": "2026-12-02T11:30:00Z"},
    ]
    history_file(tmp_path, "prod").write_text("".join(json.dumps(line) + "\n" for line in lines))
    monkeypatch.chdir(tmp_path)
    on = run_program("prod", overrides={"monitoring": _monitoring(enabled=True)})
    (cm,) = [o for o in on.objects("ConfigMap") if d.FILE in o.get("data", {})]
    pods, marks = json.loads(cm["data"][d.FILE])["annotations"]["list"]
    assert pods["expr"] == d.RELEASE_ANNOTATION
    assert marks["name"] == d.HISTORY_ANNOTATION and marks["titleFormat"] == "{{action}} {{release_id}}"
    assert marks["expr"] == (
        'label_replace(label_replace(vector(time()), "release_id", "r-20261201-01", "", ""), "action", '
        '"promote", "", "") >= 1796119200 < 1796211000\nor\n'
        'label_replace(label_replace(vector(time()), "release_id", "r-20261202-01", "", ""), "action", '
        '"rollback", "", "") >= 1796211000'
    )


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("{not json", "Expecting property name"),
        ('{"id": "r-1", "action": "promote"}', "'time'"),
        ('{"id": "r-1", "action": "promote", "time": "yesterday"}', "Invalid isoformat"),
        ('{"id": "r-1", "action": "promote", "time": "2026-12-01T10:00:00"}', "has no time zone"),
        ('{"id": "r-1\\"} or vector(1)", "action": "promote", "time": "2026-12-01T10:00:00Z"}', "id "),
        ('{"id": "r-1", "action": 7, "time": "2026-12-01T10:00:00Z"}', "action '7'"),
    ],
)
def test_a_bad_history_line_is_named_with_its_file_and_line(tmp_path: Path, line: str, needle: str) -> None:
    (tmp_path / HISTORY_DIR).mkdir()
    good = '{"id": "r-0", "action": "promote", "time": "2026-12-01T10:00:00Z"}'
    history_file(tmp_path, "prod").write_text(f"{good}\n\n{line}\n")
    with pytest.raises(HistoryError) as info:
        read_marks(tmp_path, "prod")
    assert str(info.value).startswith(f"{history_file(tmp_path, 'prod')}:3: not a release entry: ")
    assert needle in str(info.value)


def test_the_program_stops_on_a_bad_history_with_the_line_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A RunError: the engine prints its message alone (file and line), as it does a ConfigError's."""
    (tmp_path / HISTORY_DIR).mkdir()
    history_file(tmp_path, "prod").write_text('{"id": "r-1\\"}", "action": "promote", "time": "x"}\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(pulumi.RunError) as info:
        run_program("prod", overrides={"monitoring": _monitoring(enabled=True)})
    assert str(info.value).startswith(f"{history_file(tmp_path, 'prod')}:1: not a release entry: ")


def test_a_stack_without_history_has_no_history_annotation(tmp_path: Path) -> None:
    assert read_marks(tmp_path, "prod") == ()
    assert [a["name"] for a in d.dashboard()["annotations"]["list"]] == ["Releases"]
