"""S3 sources: one object, or every data object under a prefix."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from tractcast.data.sources.base import (
    CHUNK,
    Fetched,
    Probe,
    State,
    entries_of,
    is_data_name,
    safe_name,
)
from tractcast.errors import InvalidInput, Unavailable


@dataclass
class S3Source:
    """An S3 object (s3://bucket/key) or every data object under a prefix (s3://bucket/prefix/)."""

    uri: str
    client: Any = None
    bucket: str = field(init=False)
    key: str = field(init=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.uri)
        self.bucket, self.key = parts.netloc, parts.path.lstrip("/")
        if not self.bucket:
            raise InvalidInput(f"no bucket in {self.uri!r}")
        if self.client is None:
            import boto3

            self.client = boto3.client("s3")

    def objects(self) -> tuple[dict[str, dict[str, Any]], int]:
        """Entry name -> {key, etag, size}; one HEAD for a key, one listing page per 1000 keys."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            if self.key and not self.key.endswith("/"):
                try:
                    head = self.client.head_object(Bucket=self.bucket, Key=self.key)
                    name = safe_name(PurePosixPath(self.key).name)
                    entry = {"key": self.key, "etag": head["ETag"], "size": head["ContentLength"]}
                    return {name: entry}, 1
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") not in {"404", "NoSuchKey"}:
                        raise
            prefix = self.key if not self.key or self.key.endswith("/") else self.key + "/"
            found: dict[str, dict[str, Any]] = {}
            pages = 0
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                pages += 1
                for item in page.get("Contents", []):
                    name = item["Key"][len(prefix) :]
                    if name and not name.endswith("/") and is_data_name(name):
                        found[safe_name(name)] = {
                            "key": item["Key"],
                            "etag": item["ETag"],
                            "size": item["Size"],
                        }
        except (BotoCoreError, ClientError) as exc:
            raise Unavailable(f"the data source {self.uri} cannot be listed: {exc}") from exc
        if not found:
            raise InvalidInput(f"data source {self.uri!r} holds no data object")
        return dict(sorted(found.items())), pages

    def probe(self, previous: State | None = None) -> Probe:
        """Compare S3 ETags with the previous ones; downloads nothing."""
        old = entries_of(previous)
        objects, calls = self.objects()
        entries, changed = {}, []
        for name, entry in objects.items():
            before = old.get(name, {})
            if before.get("etag") == entry["etag"] and "sha256" in before:
                entries[name] = {**entry, "sha256": before["sha256"]}
            else:
                entries[name] = entry
                changed.append(name)
        removed = tuple(sorted(set(old) - set(entries)))
        return Probe({"entries": entries}, tuple(changed), removed, calls)

    def fetch(self, probe: Probe, into: Path) -> Fetched:
        from botocore.exceptions import BotoCoreError, ClientError

        entries = entries_of(probe.state)
        for name in probe.changed:
            target = Path(into) / safe_name(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=entries[name]["key"])
                digest = hashlib.sha256()
                with open(target, "wb") as stream:
                    for chunk in body["Body"].iter_chunks(CHUNK):
                        digest.update(chunk)
                        stream.write(chunk)
            except (BotoCoreError, ClientError) as exc:
                raise Unavailable(f"cannot download {entries[name]['key']}: {exc}") from exc
            entries[name] = {**entries[name], "etag": body["ETag"], "sha256": digest.hexdigest()}
        return Fetched({"entries": entries}, probe.changed, len(probe.changed))
