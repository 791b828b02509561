"""Checks on request input, in one place; each error says exactly what is wrong."""

from __future__ import annotations

import math
import re
from typing import Any

from tractcast.errors import InvalidInput, PayloadTooLarge

# What a number may look like in a query string or JSON text: decimal, optional exponent.
# Stricter than float(), which also takes "1_000", "infinity" and digits of other scripts.
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_NOT_FINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
SHOWN_CHARS = 40
LATITUDE_LIMIT = 90  # WGS84 degrees either side of the equator
LONGITUDE_LIMIT = 180  # WGS84 degrees either side of Greenwich
MAX_RADIUS_KM = 500.0
MAX_POINTS = 10000  # points of one batch request

# The shapes of the ids the registry gives out; every version id also fits the pinned pattern.
VERSION_PATTERN = r"^v\d{4,}-[a-z][a-z0-9_]*$"  # e.g. v0003-lstm, v0004-persistence
FAMILY_PATTERN = r"^[a-z][a-z0-9_]*$"
DATA_VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$"
# What a client may send as ?model_version= without a 400: safe to look up (no path, no control
# characters); a safe id that is not a stored version is a 404, not a malformed request.
PINNED_VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


def shown(value: Any) -> str:
    """A client's value for an error message: its repr, cut short when long."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[: SHOWN_CHARS - 5]}...{text[-1]}"


def parse_number(value: Any, name: str) -> float:
    """A finite float from a number or decimal text; InvalidInput naming `name` otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidInput(f"{name} is required")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidInput(f"{name} must be a number, got {shown(value)}")
    if isinstance(value, str):
        text = value.strip()
        if _NOT_FINITE.fullmatch(text):
            raise InvalidInput(f"{name} must be a finite number, got {shown(value)}")
        if not _DECIMAL.fullmatch(text):
            raise InvalidInput(f"{name} must be a number, got {shown(value)}")
        value = text
    try:
        number = float(value)
    except (ValueError, OverflowError):  # an int too large for a float
        raise InvalidInput(f"{name} must be a finite number, got {shown(value)}") from None
    if not math.isfinite(number):
        raise InvalidInput(f"{name} must be a finite number, got {shown(value)}")
    return number


def parse_coordinate(lat: Any, lon: Any) -> tuple[float, float]:
    """(lat, lon) as floats in WGS84 degrees: lat in [-90, 90], lon in [-180, 180]."""
    latitude = parse_number(lat, "lat")
    longitude = parse_number(lon, "lon")
    if not -LATITUDE_LIMIT <= latitude <= LATITUDE_LIMIT:
        raise InvalidInput(
            f"lat must be between {-LATITUDE_LIMIT} and {LATITUDE_LIMIT}, got {latitude:g}"
        )
    if not -LONGITUDE_LIMIT <= longitude <= LONGITUDE_LIMIT:
        raise InvalidInput(
            f"lon must be between {-LONGITUDE_LIMIT} and {LONGITUDE_LIMIT}, got {longitude:g}"
        )
    return latitude, longitude


def parse_radius_km(value: Any, max_km: float = MAX_RADIUS_KM) -> float:
    """A radius in km: positive, finite and at most `max_km`."""
    radius = parse_number(value, "radius_km")
    if radius <= 0:
        raise InvalidInput(f"radius_km must be positive, got {radius:g}")
    if radius > max_km:
        raise InvalidInput(f"radius_km must be at most {max_km:g}, got {radius:g}")
    return radius


def parse_horizon(value: Any, max_horizon: int = 14) -> int:
    """A forecast horizon in days, 1..max_horizon; `max_horizon` when not given (None)."""
    if value is None:
        return max_horizon
    if isinstance(value, str) and not value.strip():
        raise InvalidInput("horizon must be a whole number of days, got an empty value")
    number = parse_number(value, "horizon")
    if not number.is_integer():
        raise InvalidInput(f"horizon must be a whole number of days, got {shown(value)}")
    if not 1 <= number <= max_horizon:
        raise InvalidInput(f"horizon must be between 1 and {max_horizon}, got {int(number)}")
    return int(number)


def parse_points(body: Any, max_points: int = MAX_POINTS) -> list[tuple[float, float]]:
    """The (lat, lon) pairs of a {"points": [{"lat": .., "lon": ..}, ...]} body, in order."""
    if not isinstance(body, dict) or "points" not in body:
        raise InvalidInput('the body must be an object with a "points" list')
    points = body["points"]
    if not isinstance(points, list):
        raise InvalidInput('"points" must be a list of {"lat": .., "lon": ..} objects')
    if not points:
        raise InvalidInput('"points" must hold at least one point')
    if len(points) > max_points:
        raise PayloadTooLarge(f"at most {max_points} points per request, got {len(points)}")
    return [parse_point(point, index) for index, point in enumerate(points)]


def parse_point(point: Any, index: int) -> tuple[float, float]:
    """One entry of a points list; errors name its index."""
    if not isinstance(point, dict):
        raise InvalidInput(f'points[{index}] must be an object {{"lat": .., "lon": ..}}')
    try:
        return parse_coordinate(point.get("lat"), point.get("lon"))
    except InvalidInput as exc:
        raise InvalidInput(f"points[{index}]: {exc.message}") from None
