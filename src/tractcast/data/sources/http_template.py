"""HTTP(S) sources named by date: a URL template with {date} or {date:FORMAT}."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tractcast.data.sources.base import Probe, State, entries_of, safe_name
from tractcast.data.sources.http import HttpClient, HttpFiles, validators
from tractcast.errors import InvalidInput

DATE_TEMPLATE = re.compile(r"\{date(?::([^}]*))?\}")


@dataclass(frozen=True)
class DateTemplate:
    """A URL with a {date:FORMAT} placeholder and client-side options after '#' (start, gap)."""

    pattern: str
    start: date | None = None
    max_gap: int = 7

    @classmethod
    def parse(cls, uri: str) -> DateTemplate:
        pattern, _, fragment = uri.partition("#")
        options = {k: v[-1] for k, v in parse_qs(fragment).items()}
        start = date.fromisoformat(options["start"]) if "start" in options else None
        return cls(pattern, start, int(options.get("gap", 7)))

    def url(self, day: date) -> str:
        return DATE_TEMPLATE.sub(lambda m: day.strftime(m.group(1) or "%Y-%m-%d"), self.pattern)


class HttpTemplateSource(HttpFiles):
    """One file per day at a URL template, e.g. .../cases-{date:%Y%m%d}.csv#start=2020-02-24.

    Known days are remembered; each probe revalidates the last `recheck` of them and looks for
    the days after the last one, until `gap` consecutive days are missing or tomorrow is reached.
    """

    def __init__(
        self,
        uri: str,
        *,
        recheck: int = 7,
        timeout: float = 30.0,
        session: Any = None,
        today: date | None = None,
    ) -> None:
        self.uri = uri
        self.template = DateTemplate.parse(uri)
        self.recheck = recheck
        self.today = today
        self.client = HttpClient(timeout=timeout, session=session)

    def probe(self, previous: State | None = None) -> Probe:
        before = self.client.requests
        entries = entries_of(previous)
        if entries:
            first = max(date.fromisoformat(entry["date"]) for entry in entries.values())
            first += timedelta(days=1)
        elif self.template.start is not None:
            first = self.template.start
        else:
            raise InvalidInput(
                f"the URL template {self.uri!r} needs a first day: append #start=YYYY-MM-DD"
            )
        known = sorted(entries, key=lambda name: entries[name]["date"])
        changed, gone = self.revalidate_entries(
            entries, known[-self.recheck :] if self.recheck else []
        )
        for name in gone:
            entries.pop(name)
        new = []
        day, misses = first, 0
        last_day = (self.today or date.today()) + timedelta(days=1)
        while day <= last_day and misses < self.template.max_gap:
            url = self.template.url(day)
            response = self.client.call("HEAD", url, allow_redirects=True)
            if response.status_code == 200:
                name = safe_name(PurePosixPath(urlsplit(url).path).name)
                entries[name] = {"url": url, "date": day.isoformat(), **validators(response)}
                new.append(name)
                misses = 0
            else:
                misses += 1
            day += timedelta(days=1)
        state = {"mode": "template", "entries": entries}
        changed_names = tuple(sorted(set(new) | set(changed)))
        return Probe(state, changed_names, tuple(sorted(gone)), self.client.requests - before)
