"""A copy of the model store in S3: versions, bundles and the `current` pointer, through boto3.

Layout under s3://<bucket>/<prefix>:
    versions/<version>/<file>       every file of the version
    versions/<version>/_COMPLETE    written last: the files with their sizes and sha256, so a
                                    reader (and the next sync) knows the directory arrived whole
                                    and can verify what it downloads (manifests written before
                                    the sha256 existed list sizes only)
    bundles/<bundle_id>/...         the same for serving bundles
    layers/<sha256>/...             the tract layer's file(s), the same way, named by content
    current                         JSON naming the bundle that serves; written only after that
                                    bundle's _COMPLETE
    layer                           JSON naming the layer directory in use and its file
The local store stays the truth; the mirror is for disaster recovery and for hosts without the
shared volume. Mirroring is idempotent: what is already complete is never uploaded again.

The prefix is the layer's (`layer_prefix`): none for the one layer of a deployment without a
layers file (its keys stay where they always were), layers/<name>/ for a named layer, so layers
sharing one bucket never meet.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from tractcast.clock import utc_now
from tractcast.errors import InvalidInput, Unavailable
from tractcast.registry.integrity import file_sha256
from tractcast.registry.store import (
    LocalModelStore,
    RegistryReader,
    check_bundle_id,
    check_version,
    version_number,
    version_of_bundle,
)
from tractcast.settings import DEFAULT_LAYER, Settings
from tractcast.tract_layers import LAYERS_DIR

log = logging.getLogger(__name__)

COMPLETE = "_COMPLETE"
CURRENT = "current"
LAYER = "layer"


@dataclass
class MirrorReport:
    """What one sync uploaded (directories already complete in S3 are skipped)."""

    versions: list[str] = field(default_factory=list)
    bundles: list[str] = field(default_factory=list)
    current: str | None = None
    layer: str | None = None


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
        self._client = client if client is not None else s3_client(endpoint_url)

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
        return self.download_dir_of_version(version, Path(target) / version)

    def download_dir_of_version(self, version: str, directory: Path) -> Path:
        """Copy a complete version from S3 into `directory`, each file verified against the
        manifest's sha256."""
        return self._download_dir(f"versions/{check_version(version)}", Path(directory))

    def download_bundle(self, bundle_id: str, directory: Path) -> Path:
        """Copy a complete bundle from S3 into `directory` (made here), each file verified
        against the manifest's sha256; Unavailable when it is incomplete or a file differs."""
        return self._download_dir(f"bundles/{check_bundle_id(bundle_id)}", Path(directory))

    def bundle_ids(self) -> list[str]:
        """Bundles complete in S3, newest first."""
        complete = self._complete_dirs()
        found = [(at, d.split("/", 1)[1]) for d, at in complete.items() if d.startswith("bundles/")]
        return [bundle_id for _, bundle_id in sorted(found, reverse=True)]

    def sync_layer(self, path: Path) -> str:
        """Upload a tract layer file (with a shapefile's sidecars) unless its content is there,
        then point `layer` at it; returns the layer's key (its sha256)."""
        path = Path(path)
        files = sorted(p for p in path.parent.glob(f"{path.stem}.*") if p.is_file())
        if path.suffix.lower() not in (".shp",):
            files = [path]
        digest = hashlib.sha256()
        for item in files:
            digest.update(item.name.encode() + b"\0" + file_sha256(item).encode())
        key = digest.hexdigest()[:32]
        if not self._exists(f"layers/{key}/{COMPLETE}"):
            self._upload_files(path.parent, [p.name for p in files], f"layers/{key}")
        wanted = {"key": key, "file": path.name}
        if self._layer_pointer() != wanted:
            self._put(LAYER, json.dumps({**wanted, "updated_at": utc_now()}).encode())
        return key

    def layer_pointer(self) -> dict[str, str] | None:
        """The layer `layer` names ({"key", "file"}), or None before one was mirrored."""
        return self._layer_pointer()

    def download_layer(self, key: str, directory: Path) -> Path:
        """Copy a mirrored layer's files into `directory`, verified as bundles are."""
        return self._download_dir(f"layers/{key}", Path(directory))

    def ping(self) -> None:
        """Raise (a botocore error) unless the bucket answers."""
        self._client.head_bucket(Bucket=self.bucket)

    def _download_dir(self, key: str, directory: Path) -> Path:
        manifest = self._manifest(key)
        sha256 = manifest.get("sha256") or {}
        for name in manifest["files"]:
            path = directory / name
            path.parent.mkdir(parents=True, exist_ok=True)
            self._client.download_file(self.bucket, self._key(f"{key}/{name}"), str(path))
            size = manifest.get("sizes", {}).get(name)
            if size is not None and path.stat().st_size != size:
                raise Unavailable(f"{key}/{name} arrived with {path.stat().st_size} bytes")
            if name in sha256 and file_sha256(path) != sha256[name]:
                raise Unavailable(f"{key}/{name} fails its sha256 after download")
        return directory

    def _layer_pointer(self) -> dict[str, str] | None:
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self._key(LAYER))["Body"]
        except self._client.exceptions.NoSuchKey:
            return None
        found = json.loads(body.read())
        return {"key": str(found["key"]), "file": str(found["file"])}

    def _upload_dir(self, directory: Path, key: str) -> None:
        files = sorted(
            str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file()
        )
        self._upload_files(directory, files, key)

    def _upload_files(self, directory: Path, files: list[str], key: str) -> None:
        for name in files:
            self._client.upload_file(str(directory / name), self.bucket, self._key(f"{key}/{name}"))
        sizes = {name: (directory / name).stat().st_size for name in files}
        sha256 = {name: file_sha256(directory / name) for name in files}
        manifest = {"files": files, "sizes": sizes, "sha256": sha256}
        self._put(f"{key}/{COMPLETE}", json.dumps(manifest).encode())

    def _complete_dirs(self) -> dict[str, Any]:
        """ "versions/<v>", "bundles/<id>", "layers/<key>" whose _COMPLETE marker is in S3,
        with the time it was written."""
        found = {}
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                key = item["Key"][len(self.prefix) :]
                if key.endswith(f"/{COMPLETE}") and key.count("/") == 2:
                    found[key.rsplit("/", 1)[0]] = item["LastModified"]
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


def layer_prefix(settings: Settings) -> str:
    """Where the settings' layer keeps its keys in the bucket: at the top for the layer
    "default", under layers/<name>/ for any other."""
    return "" if settings.layer == DEFAULT_LAYER else f"{LAYERS_DIR}/{settings.layer}/"


def mirror_from_settings(settings: Settings) -> S3ArtifactMirror | None:
    """The mirror of the settings' layer, or None when no bucket is set."""
    if not settings.s3_bucket:
        return None
    return S3ArtifactMirror(
        settings.s3_bucket, settings.s3_endpoint_url, prefix=layer_prefix(settings)
    )


def mirror_store(settings: Settings, store: RegistryReader) -> MirrorReport | None:
    """Sync the store to the configured mirror; an S3 outage is logged, never raised.

    Whatever an outage left out is uploaded by the next sync, since only complete directories
    count as mirrored.
    """
    mirror = mirror_from_settings(settings)
    if mirror is None:
        return None
    from botocore.exceptions import BotoCoreError, ClientError

    from tractcast.geo.loading import tract_layer_path

    try:
        report = mirror.sync(store)
        report.layer = mirror.sync_layer(tract_layer_path(settings))
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


def restore_store(settings: Settings, store: LocalModelStore, serving: str | None) -> list[str]:
    """Copy the mirror's versions and bundles the store lacks into it (a LocalModelStore), then
    point `current` at `serving` (what the metadata database records); returns what was copied.
    Nothing without a mirror; an S3 outage is logged and leaves the store as it was."""
    mirror = mirror_from_settings(settings)
    if mirror is None:
        return []
    from botocore.exceptions import BotoCoreError, ClientError

    copied: list[str] = []
    try:
        have = {version.version for version in store.list_versions()}
        for version in mirror.mirrored_versions():
            fill = partial(mirror.download_dir_of_version, version)
            if version not in have and store.import_version(version, fill):
                copied.append(version)
        local = set(store.bundle_ids())
        for bundle_id in sorted(mirror.bundle_ids()):
            fill = partial(mirror.download_bundle, bundle_id)
            if bundle_id not in local and store.import_bundle(bundle_id, fill):
                copied.append(bundle_id)
        if serving is None and store.current_bundle_id() is None:
            # no record in the database (one made before it kept one): a fresh store follows
            # the mirror; a store serving already keeps its own, never an older mirrored one
            serving = mirror.current_bundle_id()
    except (BotoCoreError, ClientError, OSError, Unavailable) as exc:
        log.warning("S3 mirror %s not restored from: %s", settings.s3_bucket, exc)
        return copied
    if serving in store.bundle_ids() and serving != store.current_bundle_id():
        store.set_current(serving)
    if copied:
        log.info("restored %d versions and bundles from S3 mirror %s", len(copied), mirror.bucket)
    return copied


def s3_client(endpoint_url: str | None, *, attempts: int = 3, connect_timeout: float = 5) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=60,
        retries={"max_attempts": attempts, "mode": "standard"},
    )
    return boto3.client("s3", endpoint_url=endpoint_url, config=config)
