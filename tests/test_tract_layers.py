"""The layers file: each layer's settings, its own store, and what a layers file may not say."""

from __future__ import annotations

from pathlib import Path

import pytest

from tractcast.errors import InvalidInput, NotFound
from tractcast.settings import DEFAULT_LAYER, Settings
from tractcast.tract_layers import layer_named, settings_of_layer, tract_layers

LAYERS = """
[[layers]]
name = "municipalities"
tracts = "municipalities.geojson"
data_source = "https://example.org/cases.csv"
schedule = "0 3 * * mon"
epochs = 5

[[layers]]
name = "provinces"
tracts = "/data/provinces.geojson"
"""


def settings_with(tmp_path: Path, text: str) -> Settings:
    (tmp_path / "layers.toml").write_text(text)
    return Settings(store=tmp_path / "store", layers=str(tmp_path / "layers.toml"), epochs=30)


def test_without_a_layers_file_there_is_one_layer_the_settings_themselves(tmp_path):
    settings = Settings(store=tmp_path / "store")
    (layer,) = tract_layers(settings)
    assert (layer.name, layer.settings) == ("default", settings)
    assert settings_of_layer(settings, None) == settings


def test_each_layer_overrides_its_settings_and_keeps_its_store(tmp_path):
    settings = settings_with(tmp_path, LAYERS)
    fine, coarse = tract_layers(settings)
    assert (fine.name, coarse.name) == ("municipalities", "provinces")  # the file's order
    assert fine.settings.store == tmp_path / "store" / "layers" / "municipalities"
    assert coarse.settings.store == tmp_path / "store" / "layers" / "provinces"
    assert fine.settings.serving_cache == settings.serving_cache / "layers" / "municipalities"
    assert fine.settings.tracts == str(tmp_path / "municipalities.geojson")  # the file's folder
    assert coarse.settings.tracts == "/data/provinces.geojson"
    assert fine.settings.data_source == "https://example.org/cases.csv"  # a URL stays a URL
    assert (fine.settings.schedule, fine.settings.epochs) == ("0 3 * * mon", 5)
    assert (coarse.settings.schedule, coarse.settings.epochs) == (settings.schedule, 30)
    assert fine.settings.mlflow_experiment == "tractcast-municipalities"


def test_a_layer_is_found_by_name_and_an_unknown_or_malformed_one_is_refused(tmp_path):
    settings = settings_with(tmp_path, LAYERS)
    layers = tract_layers(settings)
    assert layer_named(layers, "provinces").settings.tracts == "/data/provinces.geojson"
    with pytest.raises(NotFound, match="no layer named 'regions'"):
        layer_named(layers, "regions")
    with pytest.raises(InvalidInput, match="malformed layer name"):
        layer_named(layers, "../x")
    with pytest.raises(InvalidInput, match="--layer"):
        settings_of_layer(settings, None)  # several layers: the command must name one


@pytest.mark.parametrize(
    "text, message",
    [
        ('[[layers]]\nname = "a"\nstore = "elsewhere"\n', "sets what a layer cannot: store"),
        ('[[layers]]\nname = "a"\n[[layers]]\nname = "a"\n', "names a layer twice"),
        ('[[layers]]\nname = "A b"\n', "malformed layer name"),
        ('[[layers]]\nname = "a"\nepochs = "many"\n', "epochs = 'many' is not a valid int"),
        ("name = 'a'\n", "lists no"),
        ("[[layers]\n", "cannot be read"),
    ],
)
def test_a_layers_file_that_cannot_be_used_is_refused_with_the_reason(tmp_path, text, message):
    with pytest.raises(InvalidInput, match=message):
        tract_layers(settings_with(tmp_path, text))


def test_layers_may_share_one_database_and_bucket_each_under_its_own_name(tmp_path):
    shared = {"database_url": "postgresql://db/tractcast", "s3_bucket": "tractcast"}
    fine, coarse = tract_layers(settings_with(tmp_path, LAYERS).with_(**shared))

    assert (fine.settings.layer, coarse.settings.layer) == ("municipalities", "provinces")
    assert fine.settings.database_url == coarse.settings.database_url == shared["database_url"]
    assert fine.settings.s3_bucket == coarse.settings.s3_bucket == "tractcast"
    assert tract_layers(Settings(store=tmp_path))[0].settings.layer == DEFAULT_LAYER
