"""Two tract layers served at once (Italy's provinces and the municipalities of three of them):
a point is answered from the finest layer holding it, each layer is trained, promoted and rolled
back on its own, and /v1/layers lists both."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from shapely.geometry import shape
from tests.faults.processes import serving_in_thread, wait_until

from services.api.app import create_app as create_api
from services.common.warmup import warm_up
from services.geo.app import create_app as create_geo
from tractcast.cli import main
from tractcast.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PROVINCES = ("031", "032", "100")  # Gorizia, Trieste, Prato: 38 municipalities
DAYS = ("2022-09-01", "2022-12-31")
TRIESTE = {"lat": "45.6495", "lon": "13.7768"}  # the city: municipality 032006, province 032
MILAN = {"lat": "45.4642", "lon": "9.19"}  # province 015, no municipality of the layer


def province_cases(cases: Path, out: Path) -> pd.DataFrame:
    """The provinces' file cut to four months, as published (long, cumulative)."""
    table = pd.read_csv(cases, dtype=str, keep_default_na=False)
    day = table["data"].str[:10]
    table = table[(day >= DAYS[0]) & (day <= DAYS[1])]
    table.to_csv(out, index=False)
    return table


def municipality_cases(provinces: pd.DataFrame, polygons: list[dict], out: Path) -> None:
    """Each municipality's cumulative cases: its province's, times its share of the province's
    area (rounded down, so never above the province and never falling)."""
    areas = pd.DataFrame(
        {
            "municipality": [f["properties"]["com_istat_code"] for f in polygons],
            "province": [f["properties"]["prov_istat_code"] for f in polygons],
            "area": [shape(f["geometry"]).area for f in polygons],
        }
    )
    areas["share"] = areas["area"] / areas.groupby("province")["area"].transform("sum")
    totals = provinces[provinces["codice_provincia"].isin(PROVINCES)][
        ["data", "codice_provincia", "totale_casi"]
    ].rename(columns={"codice_provincia": "province"})
    rows = areas.merge(totals, on="province")
    rows["total_cases"] = (rows["totale_casi"].astype(int) * rows["share"]).astype(int)
    rows["date"] = rows["data"].str[:10]
    rows[["date", "municipality", "total_cases"]].sort_values(["date", "municipality"]).to_csv(
        out, index=False
    )


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, italy_dir: Path) -> Settings:
    """A layers file naming both layers, their data, and settings that train in seconds."""
    base = tmp_path_factory.mktemp("two-layers")
    provinces = province_cases(italy_dir / "cases_provinces.csv.gz", base / "provinces.csv")
    with gzip.open(italy_dir / "municipalities.geojson.gz", "rt") as file:
        every = json.load(file)["features"]
    polygons = [f for f in every if f["properties"]["prov_istat_code"] in PROVINCES]
    collection = {"type": "FeatureCollection", "features": polygons}
    (base / "municipalities.geojson").write_text(json.dumps(collection))
    municipality_cases(provinces, polygons, base / "municipalities.csv")
    (base / "layers.toml").write_text(
        f"""
# the first layer answers what names no point
[[layers]]
name = "municipalities"
tracts = "municipalities.geojson"
tract_id_field = "com_istat_code"
data_source = "municipalities.csv"
schedule = "0 3 * * mon"

[[layers]]
name = "provinces"
tracts = "{italy_dir / "provinces.geojson"}"
tract_id_field = "codice_provincia"
data_source = "provinces.csv"
"""
    )
    return Settings(
        store=base / "store",
        layers=str(base / "layers.toml"),
        run_dir=base / "run",
        epochs=1,
        backtest_origins=1,
        workers=1,
    )


@pytest.fixture(scope="module")
def trained(deployment: Settings) -> dict[str, dict]:
    """Each layer trained on its own (`tractcast train --layer NAME`)."""
    return {name: train(deployment, name) for name in ("municipalities", "provinces")}


def train(settings: Settings, layer: str) -> dict:
    return cli(settings, "train", "--layer", layer)


def cli(settings: Settings, *argv: str) -> dict:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main([*argv, "--json"], settings=settings)
    assert code == 0, out.getvalue()
    return dict(json.loads(out.getvalue()))


@pytest.fixture(scope="module")
def geo_url(deployment: Settings) -> Iterator[str]:
    """The real geo app over both layers, on a loopback port, loaded before it serves as a
    gunicorn worker is (a first load on a busy machine can outlast the API's 2 s timeout)."""
    app = create_geo(deployment)
    warm_up(app)
    with serving_in_thread(app) as url:
        yield url


@pytest.fixture(scope="module")
def client(deployment: Settings, trained: dict, geo_url: str):
    app = create_api(deployment.with_(geo_url=geo_url))
    warm_up(app)
    return app.test_client()


def champions(client) -> dict[str, str]:
    listed = client.get("/v1/layers").get_json()["layers"]
    return {layer["name"]: layer["model_version"] for layer in listed}


def test_each_layer_trains_into_its_own_store(deployment, trained):
    for name, outcome in trained.items():
        assert outcome["champion"] is not None
        store = Path(deployment.store) / "layers" / name
        assert (store / "current").is_symlink()
        assert (store / "versions" / outcome["champion"]).is_dir()


def test_a_point_answers_from_the_finest_layer_holding_it(client, trained):
    answer = client.get("/v1/forecast", query_string=TRIESTE).get_json()
    assert answer["tract"]["id"] == "032006"
    assert answer["layer"] == "municipalities"
    assert answer["model_version"] == trained["municipalities"]["champion"]


def test_layer_names_the_layer_that_answers(client, trained):
    answer = client.get("/v1/forecast", query_string={**TRIESTE, "layer": "provinces"}).get_json()
    assert (answer["tract"]["id"], answer["layer"]) == ("032", "provinces")
    assert answer["model_version"] == trained["provinces"]["champion"]


def test_a_point_outside_the_finer_layer_answers_from_the_coarser(client):
    answer = client.get("/v1/forecast", query_string=MILAN).get_json()
    assert (answer["tract"]["id"], answer["layer"]) == ("015", "provinces")


def test_a_batch_answers_each_point_from_its_finest_layer(client):
    points = [{"lat": float(p["lat"]), "lon": float(p["lon"])} for p in (TRIESTE, MILAN)]
    results = client.post("/v1/forecast", json={"points": points}).get_json()["results"]
    assert [(r["tract"]["id"], r["layer"]) for r in results] == [
        ("032006", "municipalities"),
        ("015", "provinces"),
    ]


def test_an_unknown_layer_is_not_found_and_a_malformed_one_is_refused(client):
    unknown = client.get("/v1/forecast", query_string={**TRIESTE, "layer": "regions"})
    assert unknown.status_code == 404 and unknown.get_json()["error"] == "not_found"
    malformed = client.get(
        "/v1/stats/radius", query_string={**TRIESTE, "radius_km": 5, "layer": "A B"}
    )
    assert malformed.status_code == 400 and malformed.get_json()["error"] == "invalid_input"


def test_radius_statistics_are_per_layer(client):
    radius = {**TRIESTE, "radius_km": 15}
    finest = client.get("/v1/stats/radius", query_string=radius).get_json()
    coarse = client.get(
        "/v1/stats/radius", query_string={**radius, "layer": "provinces"}
    ).get_json()
    assert finest["layer"] == "municipalities" and coarse["layer"] == "provinces"
    assert {t["id"] for t in coarse["tracts"]} <= {"031", "032"}
    assert len(finest["tracts"]) > len(coarse["tracts"])
    assert all(len(t["id"]) == 6 and t["id"][:3] in PROVINCES for t in finest["tracts"])


def test_layers_lists_both_with_their_tracts_and_champions(client, trained):
    listed = {layer["name"]: layer for layer in client.get("/v1/layers").get_json()["layers"]}
    assert list(listed) == ["municipalities", "provinces"]
    assert (listed["municipalities"]["tracts"], listed["provinces"]["tracts"]) == (38, 107)
    for name, layer in listed.items():
        assert layer["model_version"] == trained[name]["champion"]
        assert layer["bundle"].startswith(layer["model_version"] + "@")
        assert layer["data_version"] == trained[name]["data_version"]


def test_a_tract_history_is_of_the_layer_asked_for(client, trained):
    finest = client.get("/v1/tracts/032006/history").get_json()  # default: the first layer
    assert (finest["layer"], finest["model_version"]) == (
        "municipalities",
        trained["municipalities"]["champion"],
    )
    coarse = client.get("/v1/tracts/032/history", query_string={"layer": "provinces"}).get_json()
    assert (coarse["layer"], coarse["model_version"]) == (
        "provinces",
        trained["provinces"]["champion"],
    )
    assert coarse["total_cases"] > finest["total_cases"]  # Trieste province holds its city
    assert client.get("/v1/tracts/032/history").status_code == 404  # not a municipality
    unknown = client.get("/v1/tracts/032/history", query_string={"layer": "regions"})
    assert unknown.status_code == 404 and unknown.get_json()["error"] == "not_found"
    malformed = client.get("/v1/tracts/032/history", query_string={"layer": "A B"})
    assert malformed.status_code == 400 and malformed.get_json()["error"] == "invalid_input"


def metric_samples(client, prefix: str) -> list:
    """The samples of the API's /metrics whose family name starts with `prefix`."""
    text = client.get("/metrics").get_data(as_text=True)
    return [
        sample
        for family in text_string_to_metric_families(text)
        if family.name.startswith(prefix)
        for sample in family.samples
    ]


def test_metrics_describe_each_layer_s_bundle(client):
    samples = metric_samples(client, "tractcast_serving_")

    def per_layer(name: str) -> dict[str, float]:
        return {s.labels["layer"]: s.value for s in samples if s.name == name}

    listed = client.get("/v1/layers").get_json()["layers"]
    names = {layer["name"] for layer in listed}
    assert per_layer("tractcast_serving_bundle_loaded") == dict.fromkeys(names, 1.0)
    assert per_layer("tractcast_serving_tracts") == {
        layer["name"]: layer["tracts_with_forecast"] for layer in listed
    }
    assert set(per_layer("tractcast_serving_bundle_age_seconds")) == names
    info = {s.labels["layer"]: s.labels for s in samples if s.name == "tractcast_serving_info"}
    for layer in listed:
        assert info[layer["name"]]["model_version"] == layer["model_version"]
        assert info[layer["name"]]["bundle_id"] == layer["bundle"]


def test_the_dashboard_summarises_the_layer_asked_for(client):
    listed = {layer["name"]: layer for layer in client.get("/v1/layers").get_json()["layers"]}
    finest = client.get("/v1/dashboard/tracts").get_json()  # default: the first layer
    coarse = client.get("/v1/dashboard/tracts", query_string={"layer": "provinces"}).get_json()
    for summary, name in ((finest, "municipalities"), (coarse, "provinces")):
        assert summary["layer"] == name
        assert summary["model_version"] == listed[name]["model_version"]
        assert len(summary["tracts"]) == listed[name]["tracts_with_forecast"]
    assert "032006" in {t["id"] for t in finest["tracts"]}
    assert "032" in {t["id"] for t in coarse["tracts"]}
    unknown = client.get("/v1/dashboard/tracts", query_string={"layer": "regions"})
    assert unknown.status_code == 404 and unknown.get_json()["error"] == "not_found"
    malformed = client.get("/v1/dashboard/tracts", query_string={"layer": "A B"})
    assert malformed.status_code == 400 and malformed.get_json()["error"] == "invalid_input"


def test_readiness_names_each_layer_s_bundle(client):
    listed = client.get("/v1/layers").get_json()["layers"]
    ready = client.get("/readyz")
    assert ready.status_code == 200
    answer = ready.get_json()
    assert answer["model_version"] == listed[0]["model_version"]  # the first's, as with one
    assert answer["layers"] == {
        layer["name"]: {
            "model_version": layer["model_version"],
            "data_version": layer["data_version"],
        }
        for layer in listed
    }  # a store on this host: no S3 state (tests/services/test_api_replica.py has it per layer)


def test_metrics_say_which_layer_s_copy_each_replica_gauge_describes(client):
    samples = metric_samples(client, "tractcast_geo_replica_")
    loaded = [s for s in samples if s.name == "tractcast_geo_replica_loaded"]
    assert {s.labels["layer"]: s.value for s in loaded} == {"municipalities": 1, "provinces": 1}
    tracts = [s for s in samples if s.name == "tractcast_geo_replica_tracts"]
    assert {s.labels["layer"]: s.value for s in tracts} == {"municipalities": 38, "provinces": 107}
    assert len({s.labels["fingerprint"] for s in tracts}) == 2  # each its own layer's copy


@pytest.mark.parametrize(
    "layer, other", [("municipalities", "provinces"), ("provinces", "municipalities")]
)
def test_promoting_and_rolling_back_one_layer_leaves_the_other_alone(
    deployment, trained, client, layer, other
):
    before = champions(client)
    challenger = next(
        version for version in trained[layer]["versions"].values() if version != before[layer]
    )
    cli(deployment, "promote", challenger, "--layer", layer)
    wait_for_champions(client, {layer: challenger, other: before[other]})
    cli(deployment, "rollback", "--layer", layer)
    wait_for_champions(client, before)


def wait_for_champions(client, expected: dict[str, str]) -> None:
    """The API follows each layer's `current` link within its check interval."""
    wait_until(lambda: champions(client) == expected, 10, f"champions {expected}")


def test_a_deployment_with_layers_needs_a_layer_named_for_training(deployment, capsys):
    assert main(["train", "--json"], settings=deployment) == 2
    assert "--layer" in json.loads(capsys.readouterr().err)["message"]
