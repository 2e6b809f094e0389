"""The daily retention sweep (``python -m worker sweep``) as a CronJob, when ``worker.retentionDays > 0``.

The sweep deletes artifact sets older than ``PREVIEW_RETENTION_DAYS`` from the
store. Its pods get the same hardening as the worker's and the API's, the
API's ConfigMap (store settings) and the store credentials from the same
Secret(s), and a NetworkPolicy that lets them reach only DNS and the S3 endpoint.
"""

from __future__ import annotations

from infra.config.model import StackConfig
from infra.manifests import network
from infra.manifests.common import (
    API_CONFIG_NAME,
    APP_NAME,
    LABEL_INSTANCE,
    LABEL_NAME,
    Manifest,
    common_labels,
    metadata,
)
from infra.manifests.pod import (
    TMP_MOUNT,
    TMP_VOLUME,
    SecretFiles,
    hardened_container,
    hardened_pod_spec,
    resources,
)

SWEEP_NAME = f"{APP_NAME}-sweep"
#: Daily, off the hour (many clusters run their own jobs at :00).
SCHEDULE = "17 3 * * *"
#: A sweep that has not finished in an hour is stuck; the next day's run starts fresh.
DEADLINE_SECONDS = 3600


def sweep_selector(instance: str) -> dict[str, str]:
    """Labels that select the sweep's pods (nothing of the worker's or the API's)."""
    return {LABEL_NAME: SWEEP_NAME, LABEL_INSTANCE: instance}


def sweep_objects(
    cfg: StackConfig, instance: str, service_account: str, secret_sources: list[Manifest], files: SecretFiles
) -> list[tuple[str, Manifest]]:
    """The CronJob and its NetworkPolicy, or nothing when retention is off (``retentionDays: 0``)."""
    if cfg.worker.retention_days <= 0:
        return []
    labels = {**common_labels(instance, component="retention"), LABEL_NAME: SWEEP_NAME}
    container = hardened_container(
        "sweep",
        cfg.image,
        ["sweep"],
        envFrom=[{"configMapRef": {"name": API_CONFIG_NAME}}, *secret_sources],
        **({"env": files.env} if files.env else {}),
        resources=resources(cfg.api.resources),
        volumeMounts=[TMP_MOUNT, *files.mounts],
    )
    pod = hardened_pod_spec(
        cfg, service_account, [container], restartPolicy="OnFailure", volumes=[TMP_VOLUME, *files.volumes]
    )
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata(SWEEP_NAME, cfg.namespace, labels),
        "spec": {
            "schedule": SCHEDULE,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": DEADLINE_SECONDS,
            "successfulJobsHistoryLimit": 1,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": labels},
                "spec": {
                    "backoffLimit": 2,
                    "activeDeadlineSeconds": DEADLINE_SECONDS,
                    "ttlSecondsAfterFinished": 86_400,
                    "template": {"metadata": {"labels": labels}, "spec": pod},
                },
            },
        },
    }
    egress = [network.dns_rule(cfg), network.s3_rule(cfg)]
    netpol = network.policy(cfg, SWEEP_NAME, sweep_selector(instance), labels, [], egress)
    return [("sweep", cronjob), ("sweep-networkpolicy", netpol)]
