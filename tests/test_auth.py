"""The admin guard: a bearer token compared in constant time; off without a token."""

from __future__ import annotations

from pathlib import Path

import pytest

from tractcast.auth import check_admin
from tractcast.errors import Forbidden, Unauthorized, Unavailable
from tractcast.settings import Settings

TOKEN = "s3cret-token"


def test_the_right_token_passes() -> None:
    check_admin(f"Bearer {TOKEN}", TOKEN)
    check_admin(f"Bearer   {TOKEN}  ", TOKEN)


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic czNjcmV0LXRva2Vu", TOKEN])
def test_no_bearer_token_is_401(header: str | None) -> None:
    with pytest.raises(Unauthorized, match="missing bearer token"):
        check_admin(header, TOKEN)


@pytest.mark.parametrize("given", ["nope", TOKEN + "x", TOKEN[:-1], "ëxotic-ünïcode", "Bearer x"])
def test_a_wrong_token_is_403(given: str) -> None:
    with pytest.raises(Forbidden, match="wrong bearer token"):
        check_admin(f"Bearer {given}", TOKEN)


def test_without_a_configured_token_admin_is_off() -> None:
    with pytest.raises(Unavailable, match="admin endpoints are disabled"):
        check_admin(f"Bearer {TOKEN}", None)


def test_dev_mode_must_be_explicit_to_open_admin_without_a_token() -> None:
    check_admin(None, None, dev_mode=True)
    assert Settings.from_env({}).dev_mode is False
    assert Settings.from_env({"TRACTCAST_DEV_MODE": "true"}).dev_mode is True


def test_the_token_can_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "admin-token"
    secret.write_text(f"{TOKEN}\n")

    settings = Settings.from_env({"TRACTCAST_ADMIN_TOKEN_FILE": str(secret)})

    assert settings.admin_token == TOKEN
    check_admin(f"Bearer {TOKEN}", settings.admin_token)


def test_the_environment_token_wins_over_the_file(tmp_path: Path) -> None:
    secret = tmp_path / "admin-token"
    secret.write_text("from-file")
    env = {"TRACTCAST_ADMIN_TOKEN": "from-env", "TRACTCAST_ADMIN_TOKEN_FILE": str(secret)}
    assert Settings.from_env(env).admin_token == "from-env"
