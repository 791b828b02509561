"""A copy of the model store in S3: versions, bundles and the `current` pointer, through boto3.

Layout under s3://<bucket>/<prefix>:
    versions/<version>/<file>       every file of the version
    versions/<version>/_COMPLETE    written last: the list of files, so a reader (and the next
                                    sync) knows the directory arrived whole
    bundles/<bundle_id>/...         the same for serving bundles
    current                         JSON naming the bundle that serves; written only after that
                                    bundle's _COMPLETE
The local store stays the truth; the mirror is for disaster recovery and for hosts without the
shared volume. Mirroring is idempotent: what is already complete is never uploaded again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tractcast.clock import utc_now
from tractcast.errors import InvalidInput, Unavailable
from tractcast.registry.store import (
    RegistryReader,
    check_bundle_id,
    check_version,
    version_number,
    version_of_bundle,
)
from tractcast.settings import Settings

log = logging.getLogger(__name__)

COMPLETE = "_COMPLETE"
CURRENT = "current"


@dataclass
class MirrorReport:
    """What one sync uploaded (directories already complete in S3 are skipped)."""

    versions: list[str] = field(default_factory=list)
    bundles: list[str] = field(default_factory=list)
    current: str | None = None


class S3ArtifactMirror:
    """Mirrors a model store's versions, bundles and `current` into one S3 bucket."""

    def __init__(
        self,
        bucket: str,
        endpoint_url: str | None = None,
        *,
        prefix: str = "",
        client: Any = None,
    ) -> None:
        if not bucket:
            raise InvalidInput("an S3 mirror needs a bucket name")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._client = client if client is not None else _client(endpoint_url)

    def sync(self, store: RegistryReader) -> MirrorReport:
        """Upload every version and bundle not yet complete in S3, then the `current` pointer."""
        complete = self._complete_dirs()
        report = MirrorReport()
        for version in store.list_versions():
            if f"versions/{version.version}" not in complete:
                assert version.path is not None
                self._upload_dir(version.path, f"versions/{version.version}")
                report.versions.append(version.version)
        for bundle_id in sorted(store.bundle_ids()):
            if f"bundles/{bundle_id}" not in complete:
                self._upload_dir(store.bundle_path(bundle_id), f"bundles/{bundle_id}")
                report.bundles.append(bundle_id)
        current_bundle_id = store.current_bundle_id()
        if current_bundle_id is not None and current_bundle_id != self.current_bundle_id():
            self.set_current(current_bundle_id)
            report.current = current_bundle_id
        return report

    def set_current(self, bundle_id: str) -> None:
        """Point the mirror's `current` at a bundle that is complete in S3."""
        check_bundle_id(bundle_id)
        if not self._exists(f"bundles/{bundle_id}/{COMPLETE}"):
            raise Unavailable(f"bundle {bundle_id} is not complete in the S3 mirror")
        body = {
            "bundle_id": bundle_id,
            "version": version_of_bundle(bundle_id),
            "updated_at": utc_now(),
        }
        self._put(CURRENT, json.dumps(body).encode())

    def current_bundle_id(self) -> str | None:
        """The bundle the mirror's `current` names, or None."""
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self._key(CURRENT))["Body"]
        except self._client.exceptions.NoSuchKey:
            return None
        return str(json.loads(body.read())["bundle_id"])

    def mirrored_versions(self) -> list[str]:
        """Versions complete in S3, oldest first."""
        names = [d.split("/", 1)[1] for d in self._complete_dirs() if d.startswith("versions/")]
        return sorted(names, key=version_number)

    def download_version(self, version: str, target: Path) -> Path:
        """Copy a complete version from S3 into target/<version>; returns that directory."""
        manifest = self._manifest(f"versions/{check_version(version)}")
        directory = Path(target) / version
        for name in manifest["files"]:
            path = directory / name
            path.parent.mkdir(parents=True, exist_ok=True)
            self._client.download_file(
                self.bucket, self._key(f"versions/{version}/{name}"), str(path)
            )
        return directory

    def _upload_dir(self, directory: Path, key: str) -> None:
        files = sorted(
            str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file()
        )
        for name in files:
            self._client.upload_file(str(directory / name), self.bucket, self._key(f"{key}/{name}"))
        sizes = {name: (directory / name).stat().st_size for name in files}
        self._put(f"{key}/{COMPLETE}", json.dumps({"files": files, "sizes": sizes}).encode())

    def _complete_dirs(self) -> set[str]:
        """ "versions/<v>" and "bundles/<id>" whose _COMPLETE marker is in S3."""
        found = set()
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                key = item["Key"][len(self.prefix) :]
                if key.endswith(f"/{COMPLETE}") and key.count("/") == 2:
                    found.add(key.rsplit("/", 1)[0])
        return found

    def _manifest(self, key: str) -> dict[str, Any]:
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self._key(f"{key}/{COMPLETE}"))
        except self._client.exceptions.NoSuchKey as exc:
            raise Unavailable(f"{key} is not complete in the S3 mirror") from exc
        return dict(json.loads(body["Body"].read()))

    def _exists(self, key: str) -> bool:
        response = self._client.list_objects_v2(
            Bucket=self.bucket, Prefix=self._key(key), MaxKeys=1
        )
        return any(item["Key"] == self._key(key) for item in response.get("Contents", []))

    def _put(self, key: str, body: bytes) -> None:
        self._client.put_object(
            Bucket=self.bucket, Key=self._key(key), Body=body, ContentType="application/json"
        )

    def _key(self, key: str) -> str:
        return f"{self.prefix}{key}"


def mirror_from_settings(settings: Settings) -> S3ArtifactMirror | None:
    """The mirror the settings name, or None when no bucket is set."""
    if not settings.s3_bucket:
        return None
    return S3ArtifactMirror(settings.s3_bucket, settings.s3_endpoint_url)


def mirror_store(settings: Settings, store: RegistryReader) -> MirrorReport | None:
    """Sync the store to the configured mirror; an S3 outage is logged, never raised.

    Whatever an outage left out is uploaded by the next sync, since only complete directories
    count as mirrored.
    """
    mirror = mirror_from_settings(settings)
    if mirror is None:
        return None
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        report = mirror.sync(store)
    except (BotoCoreError, ClientError, OSError, Unavailable) as exc:
        log.warning("S3 mirror %s not updated: %s", settings.s3_bucket, exc)
        return None
    log.info(
        "S3 mirror %s: %d versions, %d bundles uploaded; current %s",
        settings.s3_bucket,
        len(report.versions),
        len(report.bundles),
        report.current or "unchanged",
    )
    return report


def _client(endpoint_url: str | None) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=5,
        read_timeout=60,
        retries={"max_attempts": 3, "mode": "standard"},
    )
    return boto3.client("s3", endpoint_url=endpoint_url, config=config)
