"""Request input checks: each bad value is rejected with a message saying what is wrong."""

from __future__ import annotations

import math

import pytest

from tractcast.errors import InvalidInput, PayloadTooLarge
from tractcast.validation import parse_coordinate, parse_horizon, parse_points, parse_radius_km


def test_coordinates_are_parsed_from_text_and_numbers() -> None:
    assert parse_coordinate("45.4642", "9.19") == (45.4642, 9.19)
    assert parse_coordinate(-90, 180) == (-90.0, 180.0)


@pytest.mark.parametrize(
    ("lat", "lon", "message"),
    [
        (None, "9", "lat is required"),
        ("45", "", "lon is required"),
        ("abc", "9", "lat must be a number, got 'abc'"),
        ("45", [9], "lon must be a number"),
        (True, "9", "lat must be a number"),
        ("nan", "9", "lat must be a finite number"),
        ("45", math.inf, "lon must be a finite number"),
        ("90.5", "9", "lat must be between -90 and 90, got 90.5"),
        ("45", "-180.1", "lon must be between -180 and 180, got -180.1"),
    ],
)
def test_bad_coordinates_say_what_is_wrong(lat: object, lon: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_coordinate(lat, lon)


@pytest.mark.parametrize(
    "text",
    ["1_0", "0x10", "١٢", "4 5", "45,2", "--1", "1e", ".", "e5", "\x00", "45.46\n9"],
)
def test_only_decimal_text_is_a_number(text: str) -> None:
    with pytest.raises(InvalidInput, match="lat must be a number"):
        parse_coordinate(text, "9")


@pytest.mark.parametrize("text", ["NaN", "-inf", "Infinity", "+INF", "1e400", "-1e309"])
def test_text_that_is_not_finite_says_so(text: str) -> None:
    with pytest.raises(InvalidInput, match="lon must be a finite number"):
        parse_coordinate("45", text)


def test_an_integer_too_large_for_a_float_is_not_finite() -> None:
    with pytest.raises(InvalidInput, match="horizon must be a finite number"):
        parse_horizon(10**400)


def test_decimal_text_in_every_spelling_is_a_number() -> None:
    assert parse_coordinate(" 45.5 ", "+9") == (45.5, 9.0)
    assert parse_coordinate("4.55e1", ".5") == (45.5, 0.5)
    assert parse_coordinate("-0", "9.") == (0.0, 9.0)


def test_a_long_bad_value_is_cut_short_in_the_message() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_coordinate("x" * 10_000, "9")
    assert len(caught.value.message) < 100 and caught.value.message.endswith("...'")


def test_a_radius_must_be_positive_finite_and_bounded() -> None:
    assert parse_radius_km("50") == 50.0
    for value, message in [
        (None, "radius_km is required"),
        ("0", "must be positive"),
        ("-3", "must be positive"),
        ("inf", "finite"),
        ("501", "at most 500"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            parse_radius_km(value)
    assert parse_radius_km(900, max_km=1000) == 900.0


def test_a_missing_horizon_means_the_longest() -> None:
    assert parse_horizon(None) == 14
    assert parse_horizon(None, max_horizon=7) == 7


def test_an_empty_horizon_is_not_a_missing_one() -> None:
    with pytest.raises(InvalidInput, match="horizon must be a whole number of days"):
        parse_horizon("")


def test_a_horizon_is_a_whole_number_of_days_in_range() -> None:
    assert parse_horizon("3") == 3 and parse_horizon(14) == 14 and parse_horizon(2.0) == 2
    for value, message in [("0", "between 1 and 14"), (15, "between 1 and 14"), ("1.5", "whole")]:
        with pytest.raises(InvalidInput, match=message):
            parse_horizon(value)


def test_points_are_parsed_in_order() -> None:
    body = {"points": [{"lat": 45.46, "lon": 9.19}, {"lat": "41.9", "lon": "12.5"}]}
    assert parse_points(body) == [(45.46, 9.19), (41.9, 12.5)]


def test_a_bad_point_is_named_by_its_index() -> None:
    body = {"points": [{"lat": 45, "lon": 9}, {"lat": 45}]}
    with pytest.raises(InvalidInput, match=r"points\[1\]: lon is required"):
        parse_points(body)
    with pytest.raises(InvalidInput, match=r"points\[0\] must be an object"):
        parse_points({"points": [[45, 9]]})


@pytest.mark.parametrize("body", [{}, {"points": "x"}, {"points": []}, [1, 2]])
def test_a_body_without_a_points_list_is_rejected(body: object) -> None:
    with pytest.raises(InvalidInput):
        parse_points(body)


def test_too_many_points_are_too_large() -> None:
    with pytest.raises(PayloadTooLarge, match="at most 2 points"):
        parse_points({"points": [{"lat": 0, "lon": 0}] * 3}, max_points=2)
