"""The ``s3`` store: artifact sets in any S3-compatible bucket, served by presigned URLs.

Layout: ``<prefix><jobId>/manifest.json`` and ``<prefix><jobId>/<setId>/<name>.<format>``.
Every write attempt uploads its renditions under a fresh ``setId``, then the
manifest with ``If-None-Match: *``: the first complete manifest wins, a losing
attempt deletes its own renditions, and a reader (who starts from the manifest)
never sees a half-written set. Credentials come from botocore's standard chain
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_SHARED_CREDENTIALS_FILE``,
workload identity) and never pass through settings or logs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from worker import constants as c
from worker import logs
from worker.render.registry import Rendition
from worker.settings import Settings
from worker.store import artifacts
from worker.store.base import ArtifactStore, Download, StoreUnavailableError, SweepReport

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client
    from types_boto3_s3.type_defs import ObjectIdentifierTypeDef

log = logs.get("store")
# botocore says at INFO where it found credentials, on every client: noise in the job log.
logging.getLogger("botocore.credentials").setLevel(logging.WARNING)
NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
LOST_RACE = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
NO_LIFECYCLE = frozenset({"NoSuchLifecycleConfiguration"})
UNSUPPORTED = frozenset({"NotImplemented", "XNotImplemented"})


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


@contextmanager
def _guard(action: str) -> Iterator[None]:
    """Turn every botocore failure into a transient :class:`StoreUnavailableError`."""
    try:
        yield
    except ClientError as err:
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        raise StoreUnavailableError(f"artifact store: {action}: {_code(err)} (HTTP {status})") from err
    except BotoCoreError as err:
        raise StoreUnavailableError(f"artifact store: {action}: {type(err).__name__}: {err}") from err


class S3Store(ArtifactStore):
    """Artifact sets in ``bucket`` under ``prefix``; downloads are presigned, expiring GET URLs."""

    kind = c.STORE_S3

    def __init__(self, settings: Settings) -> None:
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix.rstrip("/") + "/" if settings.s3_prefix else ""
        self.url_ttl = settings.s3_url_ttl_seconds
        config = Config(
            region_name=settings.s3_region,
            signature_version="s3v4",
            s3={"addressing_style": settings.s3_addressing_style},
            connect_timeout=settings.s3_timeout_seconds,
            read_timeout=settings.s3_timeout_seconds,
            retries={"mode": "standard", "max_attempts": 2},
            # Checksums only where the API requires them: not every S3-compatible service has the newer ones.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        session = boto3.session.Session()
        self.client: S3Client = session.client("s3", endpoint_url=settings.s3_endpoint or None, config=config)
        # URLs are signed for the endpoint clients reach, which may differ from the in-cluster one.
        public = settings.s3_public_endpoint or settings.s3_endpoint or None
        self.signer: S3Client = session.client("s3", endpoint_url=public, config=config)

    def key(self, job_id: str, path: str) -> str:
        """Object key of ``path`` (relative to the set) of job ``job_id``."""
        artifacts.job_dir(Path("."), job_id)  # refuses unsafe job IDs (ValueError)
        return f"{self.prefix}{job_id}/{path}"

    def write_set(
        self, job_id: str, media_type: str, renditions: Sequence[Rendition], metadata: dict[str, Any]
    ) -> dict[str, Any]:
        """Upload renditions under a fresh set ID, then the manifest if none exists yet."""
        existing = self.load_manifest(job_id)
        if existing is not None:
            return existing
        set_id = uuid.uuid4().hex[:12]
        uploaded: list[str] = []
        manifest_sent = False
        try:
            entries = []
            for r in renditions:
                entry = artifacts.rendition_entry(r, f"{set_id}/{r.name}.{r.format}")
                self._put(self.key(job_id, entry["path"]), r.data, entry["contentType"])
                uploaded.append(entry["path"])
                entries.append(entry)
            manifest = artifacts.build_manifest(job_id, media_type, metadata, entries)
            manifest_sent = True
            won = self._put(
                self.key(job_id, c.MANIFEST_FILE),
                json.dumps(manifest, indent=2).encode(),
                "application/json",
                if_none_match=True,
            )
        except BaseException:
            # Once the manifest was sent, it may be stored even though the reply was lost: its
            # renditions must stay. Strays are harmless (nothing names them) and swept later.
            if not manifest_sent:
                self._discard(job_id, uploaded)
            raise
        if won:
            return manifest
        winner = self.load_manifest(job_id)
        if winner is None:
            raise StoreUnavailableError(f"artifact store: manifest of {job_id} vanished after a lost race")
        # A retried PUT can lose to its own first try (stored, reply lost): only another set's win
        # makes ours garbage.
        if not any(e["path"].startswith(f"{set_id}/") for e in winner["renditions"]):
            self._discard(job_id, uploaded)
        return winner

    def _put(self, key: str, data: bytes, content_type: str, if_none_match: bool = False) -> bool:
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        extra: dict[str, Any] = {"IfNoneMatch": "*"} if if_none_match else {}
        with _guard(f"upload {key}"):
            try:
                self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, ContentMD5=md5, **extra
                )
            except ClientError as err:
                if if_none_match and _code(err) in LOST_RACE:
                    return False
                raise
        return True

    def _discard(self, job_id: str, paths: list[str]) -> None:
        # Best effort: with the store down these stay as strays, invisible (no manifest names them),
        # until the sweep or the lifecycle rule removes them.
        if not paths:
            return
        try:
            self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": self.key(job_id, p)} for p in paths]}
            )
        except (BotoCoreError, ClientError) as err:
            log.warning(
                "could not delete unfinished renditions", extra={"jobId": job_id, "error": type(err).__name__}
            )

    def load_manifest(self, job_id: str) -> dict[str, Any] | None:
        """The job's manifest, None if absent; StoreUnavailableError if the store cannot answer."""
        with _guard(f"read manifest of {job_id}"):
            try:
                got = self.client.get_object(Bucket=self.bucket, Key=self.key(job_id, c.MANIFEST_FILE))
            except ClientError as err:
                if _code(err) in NOT_FOUND:
                    return None
                raise
            body = got["Body"].read()
        return artifacts.read_manifest(body)

    def download(self, job_id: str, entry: dict[str, Any]) -> Download:
        """A presigned GET URL valid for ``PREVIEW_S3_URL_TTL_SECONDS`` (signing needs no request)."""
        with _guard("presign"):
            url = self.signer.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self.key(job_id, entry["path"])},
                ExpiresIn=self.url_ttl,
            )
        return Download(entry["contentType"], url=url)

    def sweep(self, cutoff: float) -> SweepReport:
        """Delete sets whose manifest predates ``cutoff`` (manifest first) and old unfinished writes."""
        groups: dict[str, list[tuple[str, float]]] = defaultdict(list)
        with _guard("list artifacts"):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            ):
                for obj in page.get("Contents", []):
                    job_id = obj["Key"][len(self.prefix) :].split("/", 1)[0]
                    groups[job_id].append((obj["Key"], obj["LastModified"].timestamp()))
        report = SweepReport()
        for job_id, objects in sorted(groups.items()):
            manifest_key = f"{self.prefix}{job_id}/{c.MANIFEST_FILE}"
            manifest = [t for k, t in objects if k == manifest_key]
            if manifest and manifest[0] < cutoff:
                self._delete([manifest_key])  # the set disappears for readers in this one step
                self._delete([k for k, _ in objects if k != manifest_key])
                report.deleted_sets.append(job_id)
            elif not manifest:
                strays = [k for k, t in objects if t < cutoff]
                self._delete(strays)
                report.deleted_strays += len(strays)
        return report

    def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch: list[ObjectIdentifierTypeDef] = [{"Key": k} for k in keys[start : start + 1000]]
            with _guard("delete artifacts"):
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def apply_retention(self, days: int) -> bool:
        """Set (or, for 0, remove) this store's expiration rule, keeping the bucket's other rules."""
        with _guard("read lifecycle"):
            try:
                rules = self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket)["Rules"]
            except ClientError as err:
                if _code(err) in UNSUPPORTED:
                    return False
                if _code(err) not in NO_LIFECYCLE:
                    raise
                rules = []
        kept: list[Any] = [r for r in rules if r.get("ID") != c.S3_LIFECYCLE_RULE_ID]
        if days > 0:
            kept.append(
                {
                    "ID": c.S3_LIFECYCLE_RULE_ID,
                    "Status": "Enabled",
                    "Filter": {"Prefix": self.prefix},
                    "Expiration": {"Days": days},
                }
            )
        with _guard("write lifecycle"):
            if kept:
                self.client.put_bucket_lifecycle_configuration(
                    Bucket=self.bucket, LifecycleConfiguration={"Rules": kept}
                )
            elif rules:
                self.client.delete_bucket_lifecycle(Bucket=self.bucket)
        return True
