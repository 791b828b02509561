"""Settings: every field has its variable in .env.example and survives to_env -> from_env."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, get_type_hints

import pytest

from tractcast.settings import Settings

ENV_EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"
FIELDS = [item for item in dataclasses.fields(Settings) if "env" in item.metadata]


def _other_value(name: str, kind: Any, default: Any, root: Path) -> Any:
    """A value of the field's type that differs from its default."""
    if kind is bool:
        return not default
    if kind is int:
        return default + 7
    if kind is float:
        return default + 0.125
    if kind is Path:
        return root / name
    return f"{name}-value"


def test_every_setting_has_its_variable_in_env_example() -> None:
    listed = set(re.findall(r"^(TRACTCAST_[A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.MULTILINE))
    for item in FIELDS:
        assert f"TRACTCAST_{item.name.upper()}" in listed, f"{item.name} is not in .env.example"


def test_every_setting_round_trips_through_the_environment(tmp_path: Path) -> None:
    kinds = get_type_hints(Settings)
    changed = {
        item.name: _other_value(item.name, kinds[item.name], item.default, tmp_path)
        for item in FIELDS
    }
    settings = Settings(**changed)
    env = settings.to_env()
    assert len(env) == len(FIELDS)  # every changed setting is written out
    rebuilt = Settings.from_env(env)
    for name, value in changed.items():
        assert getattr(rebuilt, name) == value, name
    assert rebuilt == settings


def test_unset_and_empty_variables_keep_the_defaults() -> None:
    empty = {f"TRACTCAST_{item.name.upper()}": "" for item in FIELDS}
    assert Settings.from_env({}) == Settings()
    assert Settings.from_env(empty) == Settings()


def test_optional_text_is_stripped_and_blank_means_unset() -> None:
    settings = Settings.from_env({"TRACTCAST_DATA_SOURCE": "  cases.csv ", "TRACTCAST_NGINX": " "})
    assert settings.data_source == "cases.csv"
    assert settings.nginx is None


def test_a_malformed_number_is_refused() -> None:
    with pytest.raises(ValueError):
        Settings.from_env({"TRACTCAST_HORIZON": "two weeks"})
