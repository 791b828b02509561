"""The dashboard of a deployment serving two tract layers (tests/e2e/test_two_layers.py's
provinces and municipalities) on the real stack through nginx, driven in headless Chromium:
tests/web/dashboard_layers.spec.mjs picks each layer and checks that the page follows."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
from tests.e2e.test_two_layers import deployment, trained  # noqa: F401  (fixtures)
from tests.faults.processes import loopback_ports, stack_through_nginx
from tests.web.test_dashboard import HERE, run_browser_spec

from tractcast.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SPEC = HERE / "dashboard_layers.spec.mjs"


@pytest.fixture(scope="module")
def url(deployment: Settings, trained: dict) -> Iterator[str]:  # noqa: F811
    """Both trained layers served by the stack through nginx."""
    with stack_through_nginx(deployment.with_(**loopback_ports())) as public:
        yield public


def test_a_planner_picks_a_layer_and_the_map_and_forecasts_follow(
    url: str,
    trained: dict,  # noqa: F811
) -> None:
    listed = requests.get(f"{url}/v1/layers", timeout=10).json()["layers"]
    tracts = {"municipalities": "032006", "provinces": "032"}  # Trieste in each
    expected = [
        {
            "name": layer["name"],
            "tracts": layer["tracts"],
            "champion": trained[layer["name"]]["champion"],
            "tract": tracts[layer["name"]],
        }
        for layer in listed
    ]
    seen = run_browser_spec(SPEC, DASHBOARD_URL=f"{url}/", EXPECTED=json.dumps(expected))

    assert seen["options"] == ["municipalities", "provinces"]
    assert seen["chosen"] == "municipalities"  # the finest first
    for layer in expected:
        shown = seen["layers"][layer["name"]]
        assert shown["tracts"] == shown["coloured"] == layer["tracts"]
        assert shown["title"] == f"Trieste ({layer['tract']})"
        assert layer["champion"] in shown["chartKey"]
        assert shown["versionRows"] == len(trained[layer["name"]]["versions"])
        assert shown["status"] == ""
    assert (seen["layers"]["municipalities"]["tracts"], seen["layers"]["provinces"]["tracts"]) == (
        38,
        107,
    )
    assert seen["foreignRequests"] == [] and seen["pageErrors"] == []
