"""The public routing of nginx/nginx.conf.template, for the gateway that stands in for nginx.

On a machine without nginx, `make up` serves the same front door from services/gateway: the same
locations, matched the way nginx matches them (exact, then regex in order, then the longest
prefix), the same admin guard, rate-limit zones, security headers and JSON errors. A test reads
the template's `location` lines and compares them with ROUTES, so the two cannot drift apart.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SERVICES = ("api", "geo", "registry", "retrainer")

#: Headers nginx's server block adds to every answer (the CSP of /static/ is STATIC_CSP).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
STATIC_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml; charset=utf-8",
}
_BEARER = re.compile(r"^Bearer\s+\S+")


@dataclass(frozen=True)
class Route:
    """One nginx location: how it matches, where it goes, which limits apply."""

    match: str  # "=" exact, "~" regex, "" prefix (nginx's location modifiers)
    path: str
    target: str  # a service name, "static", "index", "ok" (gateway's own liveness) or "404"
    zone: str | None = "public"  # the limit_req zone, None where nginx sets none
    burst: int = 40
    admin: bool = False  # nginx answers 401 itself when no bearer token is sent
    max_body: int = 2 * 1024 * 1024
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.match == "~":
            object.__setattr__(self, "_regex", re.compile(self.path))

    def matches(self, path: str) -> bool:
        if self.match == "=":
            return path == self.path
        if self.match == "~":
            return bool(self._regex and self._regex.search(path))
        return path.startswith(self.path)


ADMIN_BODY = 64 * 1024
#: In the template's order; `route_for` applies nginx's precedence, not this order.
ROUTES: tuple[Route, ...] = (
    Route("=", "/v1/forecast", "api"),
    Route("", "/v1/stats/", "api"),
    Route("=", "/v1/layers", "api"),
    Route("=", "/healthz", "api", zone=None),
    Route("=", "/readyz", "api", zone=None),
    Route("=", "/metrics", "api", burst=10),
    Route("=", "/openapi.json", "api", burst=10),
    Route("", "/v1/tracts", "geo"),
    Route("=", "/v1/tracts/replica", "404"),
    Route("", "/v1/models", "registry", burst=20),
    Route("", "/v1/events", "registry", burst=20),
    Route(
        "~", "^/v1/admin/(promote|rollback|data/accept)$", "registry", "admin", 5, True, ADMIN_BODY
    ),
    Route("=", "/v1/admin/retrain", "retrainer", "admin", 5, True, ADMIN_BODY),
    Route("", "/v1/admin/", "404", "admin", 5),
    Route("", "/v1/dashboard/", "api", burst=20),
    Route("~", "^/v1/tracts/[^/]+/history$", "api"),
    Route("=", "/", "index", zone=None),
    Route("", "/static/", "static"),
    Route("=", "/healthz/nginx", "ok", zone=None),
    Route("", "/", "404"),
)


def route_for(path: str, routes: tuple[Route, ...] = ROUTES) -> Route:
    """The location nginx would pick for path: exact, else regex in order, else longest prefix."""
    for route in routes:
        if route.match == "=" and route.matches(path):
            return route
    for route in routes:
        if route.match == "~" and route.matches(path):
            return route
    prefixes = [r for r in routes if r.match == "" and r.matches(path)]
    return max(prefixes, key=lambda r: len(r.path))


def has_bearer(authorization: str | None) -> bool:
    """Whether an Authorization header carries a bearer token (the service checks its value)."""
    return bool(authorization and _BEARER.match(authorization))


def parse_rate(rate: str) -> float:
    """Requests per second of a limit_req rate such as 20r/s or 10r/m."""
    count, unit = rate[:-3], rate[-1]
    return int(count) / (1.0 if unit == "s" else 60.0)


class RateLimiter:
    """nginx's limit_req with nodelay: a leaky bucket per client and zone, `burst` past the rate."""

    def __init__(
        self, rates: dict[str, float], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rates = rates
        self._clock = clock
        self._excess: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, zone: str, client: str, burst: int) -> bool:
        """Take one request from client in zone; False when it would pass the burst."""
        rate = self._rates[zone]
        now = self._clock()
        with self._lock:
            excess, last = self._excess.get((zone, client), (0.0, now))
            excess = max(0.0, excess - (now - last) * rate) + 1.0
            if excess > burst + 1:
                return False
            self._excess[(zone, client)] = (excess, now)
            if len(self._excess) > 100_000:  # nginx's zone is bounded too: forget idle clients
                self._excess = {k: v for k, v in self._excess.items() if now - v[1] < 60}
            return True
