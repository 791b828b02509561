"""HTTP client of the geo service: the API maps points to tracts through it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from tractcast.errors import InvalidInput, PayloadTooLarge, Unavailable
from tractcast.geo.index import Tract, TractHit

UNAVAILABLE_MESSAGE = "geo service unavailable"


class GeoClient:
    """Talks to the geo service over one pooled session; any outage is `Unavailable`.

    The session reconnects by itself, so the first call after geo comes back succeeds.
    """

    def __init__(self, base_url: str, timeout: float = 2.0, pool_size: int = 16) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        # One quick retry of a refused/reset connection covers a geo restart; never retry reads.
        retry = Retry(total=1, connect=1, read=0, status=0, redirect=0, raise_on_status=False)
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def tract_for_point(self, lat: float, lon: float) -> Tract | None:
        """The tract containing the point, or None when it lies outside every tract."""
        response = self._request("GET", "/v1/tracts/lookup", params={"lat": lat, "lon": lon})
        if response.status_code == 404:
            return None
        return _tract(self._json(response).get("tract"))

    def tracts_for_points(self, points: Sequence[tuple[float, float]]) -> list[Tract | None]:
        """One tract (or None) per point, in order, with a single batch request."""
        if not points:
            return []
        body = {"points": [{"lat": lat, "lon": lon} for lat, lon in points]}
        results = self._json(self._request("POST", "/v1/tracts/lookup", json=body)).get("results")
        if not isinstance(results, list) or len(results) != len(points):
            raise Unavailable(UNAVAILABLE_MESSAGE)
        return [_tract(item.get("tract")) if isinstance(item, dict) else None for item in results]

    def tracts_within_radius(self, lat: float, lon: float, radius_km: float) -> list[TractHit]:
        """Tracts whose polygon meets the circle, with their distance from the center."""
        params = {"lat": lat, "lon": lon, "radius_km": radius_km}
        tracts = self._json(self._request("GET", "/v1/tracts/radius", params=params)).get("tracts")
        if not isinstance(tracts, list):
            raise Unavailable(UNAVAILABLE_MESSAGE)
        hits = []
        for item in tracts:
            tract = _tract(item)
            if tract is None:
                raise Unavailable(UNAVAILABLE_MESSAGE)
            hits.append(TractHit(tract=tract, distance_km=float(item.get("distance_km", 0.0))))
        return hits

    def ready(self) -> bool:
        """Whether geo answers its own readiness check."""
        try:
            response = self.session.get(f"{self.base_url}/readyz", timeout=self.timeout)
        except requests.RequestException:
            return False
        return response.status_code == 200

    def close(self) -> None:
        self.session.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(
                method, f"{self.base_url}{path}", timeout=self.timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise Unavailable(UNAVAILABLE_MESSAGE) from exc
        if response.status_code in (400, 413):
            # Geo refused the input itself: pass its (client-safe) message on.
            error = InvalidInput if response.status_code == 400 else PayloadTooLarge
            raise error(_message(response) or "geo service rejected the input")
        if response.status_code != 404 and not response.ok:
            raise Unavailable(UNAVAILABLE_MESSAGE)
        return response

    @staticmethod
    def _json(response: requests.Response) -> dict[str, Any]:
        if response.status_code == 404:
            raise Unavailable(UNAVAILABLE_MESSAGE)
        try:
            body = response.json()
        except ValueError as exc:
            raise Unavailable(UNAVAILABLE_MESSAGE) from exc
        if not isinstance(body, dict):
            raise Unavailable(UNAVAILABLE_MESSAGE)
        return body


def _tract(item: Any) -> Tract | None:
    if not isinstance(item, dict) or item.get("id") is None:
        return None
    return Tract(id=str(item["id"]), name=str(item.get("name") or item["id"]))


def _message(response: requests.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else None
