"""The gateway's routing table is nginx's: same locations, same precedence, same limits."""

from __future__ import annotations

import re

import pytest

from tractcast.gateway import ROUTES, RateLimiter, Route, has_bearer, parse_rate, route_for
from tractcast.nginxconf import NGINX_TEMPLATE, TEMPLATE_DIR

_LOCATION = re.compile(r"^\s*location\s+(=|~)?\s*([^\s{@]+)\s*\{", re.M)
_UPSTREAM = re.compile(r"proxy_pass\s+http://tractcast_(\w+);")
_LIMIT = re.compile(r"limit_req\s+zone=tc_(\w+)\s+burst=(\d+)")


def block_after(text: str, start: int) -> str:
    """The text of the block whose opening brace ends just before start, nested blocks included."""
    depth = 1
    for end in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            return text[start:end]
    raise ValueError("unclosed block")


def nginx_locations() -> dict[tuple[str, str], dict[str, object]]:
    """(modifier, path) -> where nginx sends it and with which limits, read from the template."""
    text = (TEMPLATE_DIR / NGINX_TEMPLATE).read_text()
    found = {}
    for match in _LOCATION.finditer(text):
        modifier, path, body = match.group(1), match.group(2), block_after(text, match.end())
        if "internal;" in body:  # nginx's own error pages, not routes
            continue
        upstream, limit = _UPSTREAM.search(body), _LIMIT.search(body)
        if upstream:
            target = upstream.group(1)
        elif "alias" in body:
            target = "static"
        elif "rewrite" in body:
            target = "index"
        elif "return 200" in body:
            target = "ok"
        else:
            target = "404"
        found[(modifier or "", path)] = {
            "target": target,
            "zone": limit.group(1) if limit else None,
            "burst": int(limit.group(2)) if limit else None,
            "admin": "tc_has_bearer" in body,
        }
    return found


def test_the_gateway_has_exactly_nginx_s_locations_with_the_same_targets_and_limits():
    nginx = nginx_locations()
    ours = {
        (r.match, r.path): {
            "target": r.target,
            "zone": r.zone,
            "burst": r.burst if r.zone else None,
            "admin": r.admin,
        }
        for r in ROUTES
    }
    assert len(nginx) >= 15
    assert ours == nginx


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/v1/forecast", "api"),
        ("/v1/forecastx", "404"),
        ("/v1/stats/radius", "api"),
        ("/v1/tracts/lookup", "geo"),
        ("/v1/tracts/015", "geo"),
        ("/v1/tracts/015/history", "api"),  # the regex wins over geo's prefix
        ("/v1/tracts/replica", "404"),  # exact wins over everything
        ("/v1/models/current", "registry"),
        ("/v1/admin/rollback", "registry"),
        ("/v1/admin/retrain", "retrainer"),
        ("/v1/admin/anything", "404"),
        ("/v1/dashboard/tracts", "api"),
        ("/", "index"),
        ("/static/app.js", "static"),
        ("/healthz", "api"),
        ("/healthz/nginx", "ok"),
        ("/etc/passwd", "404"),
    ],
)
def test_a_path_goes_where_nginx_sends_it(path: str, target: str):
    assert route_for(path).target == target


def test_admin_routes_need_a_bearer_token_and_a_small_body():
    route = route_for("/v1/admin/promote")
    assert route.admin and route.zone == "admin" and route.max_body == 64 * 1024
    assert has_bearer("Bearer abc")
    assert not has_bearer("Bearer ") and not has_bearer("Basic abc") and not has_bearer(None)


def test_the_rate_limit_lets_a_burst_through_then_refuses_until_time_refills_it():
    now = [0.0]
    limiter = RateLimiter({"public": parse_rate("20r/s")}, clock=lambda: now[0])
    allowed = sum(limiter.allow("public", "10.0.0.1", burst=40) for _ in range(60))
    assert allowed == 41  # nginx's nodelay: the rate's one request plus the burst
    assert limiter.allow("public", "10.0.0.2", burst=40)  # per client
    assert not limiter.allow("public", "10.0.0.1", burst=40)
    now[0] = 0.5  # 20 r/s for half a second: ten more
    assert sum(limiter.allow("public", "10.0.0.1", burst=40) for _ in range(20)) == 10


def test_a_rate_per_minute_is_a_sixtieth_per_second():
    assert parse_rate("10r/m") == pytest.approx(1 / 6)
    assert parse_rate("20r/s") == 20.0


def test_a_regex_route_compiles_its_pattern():
    assert Route("~", "^/a/[0-9]+$", "api").matches("/a/12")
    assert not Route("~", "^/a/[0-9]+$", "api").matches("/a/b")
