"""Where case data comes from: local files, directories and globs, HTTP(S) and S3, one interface.

A source is a set of named entries (files). Its state remembers, per entry, the validators seen
last time (ETag, Last-Modified, size, mtime) and the SHA-256 of its bytes, so `probe` can tell
what changed without downloading anything, and `fetch` downloads only the entries that changed.

One module per backend (`local`, `http`, `http_template`, `s3`), what they share in `base`, and
the one factory, `open_source`, here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from tractcast.data.sources.base import URL, Source
from tractcast.data.sources.http import HttpSource
from tractcast.data.sources.http_template import DATE_TEMPLATE, HttpTemplateSource
from tractcast.data.sources.local import GLOB, DirectorySource, LocalFileSource
from tractcast.data.sources.s3 import S3Source
from tractcast.errors import InvalidInput


def open_source(uri: str | Path, **options: Any) -> Source:
    """The backend for a URI: s3://, http(s):// (file, directory index or {date} template),
    a glob, a directory or a file."""
    text = str(uri).strip()
    if not text:
        raise InvalidInput("the data source is empty")
    scheme = text.split("://", 1)[0].lower() if URL.match(text) else ""
    if scheme == "s3":
        return S3Source(text, **options)
    if scheme in {"http", "https"}:
        if DATE_TEMPLATE.search(text):
            return HttpTemplateSource(text, **options)
        return HttpSource(text, **options)
    if scheme == "file":
        text = unquote(urlsplit(text).path)
    elif scheme:
        raise InvalidInput(f"unsupported data source scheme {scheme!r} in {text!r}")
    path = Path(text).expanduser()
    if GLOB.search(text) or path.is_dir():
        return DirectorySource(text)
    return LocalFileSource(path)
