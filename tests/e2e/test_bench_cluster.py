"""Smoke test of ``python -m bench --quick``'s cluster sections: the real engine and scaling.

They run on the session's local cluster (``--cluster``, conftest.py's ``local_cluster``) rather
than starting one each; the other sections' test is ``tests/bench/test_bench.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.tools.local.cluster import control_plane
from tests.bench.test_bench import CLUSTER_SECTIONS, quick_run


@pytest.mark.timeout(900)
def test_quick_cluster_sections_time_the_real_engine_and_scaling(
    local_cluster: control_plane.Cluster, tmp_path: Path
) -> None:
    shared = ("--cluster", str(local_cluster.state.root))
    stdout, results = quick_run(tmp_path / "results", list(CLUSTER_SECTIONS), *shared)
    for heading in (
        "Real engine, dev stack on the local cluster",
        "Backlog to scale-out on the local cluster",
    ):
        assert heading in stdout, stdout
    engine = results["engine"]
    assert set(engine["median_s"]) == {"preview", "up", "preview_no_changes", "destroy"}
    assert all(seconds > 0.5 for seconds in engine["median_s"].values()), engine  # real commands ran
    assert set(engine["met"]) == {"preview", "up"}
    scaling = results["scaling"]
    assert set(scaling["median"]) == {"adapter", "keda"}
    # Real scaling happened: never instant (a scrape and a sync at least), KEDA woke from zero.
    assert all(m["scale_out_s"] > 0.5 for m in scaling["median"].values()), scaling
    assert scaling["median"]["keda"]["wake_s"] > 0.2 and scaling["ratio_keda_adapter"] > 0
