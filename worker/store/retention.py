"""``python -m worker sweep``: enforce ``PREVIEW_RETENTION_DAYS`` on the configured store.

It sets the bucket lifecycle rule where the service supports one (so the store
expires artifacts on its own) and also deletes, itself, every set last written
more than N days ago: the sweep covers services without lifecycle rules, the
filesystem store, and strays of writes that never completed. Run it daily
(the systemd timer in ``deploy/systemd/`` or a CronJob).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from worker.settings import Settings
from worker.store import StoreUnavailableError, from_settings

DAY_SECONDS = 86_400


def sweep(settings: Settings, now: float | None = None) -> dict[str, Any]:
    """Apply the retention rule and sweep; the report printed by the command."""
    days = settings.retention_days
    artifact_store = from_settings(settings)
    if days == 0:
        # Retention off: also drop our lifecycle rule, so turning retention off really keeps artifacts.
        artifact_store.apply_retention(0)
        return {
            "store": artifact_store.kind,
            "retentionDays": 0,
            "lifecycleRule": False,
            "deleted": 0,
            "jobIds": [],
            "strays": 0,
        }
    rule = artifact_store.apply_retention(days)
    cutoff = (time.time() if now is None else now) - days * DAY_SECONDS
    report = artifact_store.sweep(cutoff)
    return {"store": artifact_store.kind, "retentionDays": days, "lifecycleRule": rule, **report.as_json()}


def main(settings: Settings) -> int:
    """Run the sweep, print its JSON report; exit 1 (message on stderr) if the store is unreachable."""
    try:
        report = sweep(settings)
    except StoreUnavailableError as err:
        print(f"sweep failed: {err}", file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0
