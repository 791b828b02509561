"""The reference server of bench/serving.py: Keras `model.predict` on every request.

What serving would cost without bundles: the same model version the API serves (its model.h5,
loaded with safe_mode), the same tract lookup in-process, the tract's last `lookback` days, and
one model.predict per GET /v1/forecast. Bench only: this process imports TensorFlow.
    gunicorn 'bench.keras_reference:create_app()'   (settings from TRACTCAST_*, plus
    BENCH_MODEL_VERSION naming the version directory under the store)
"""

from __future__ import annotations

import os

import numpy as np
from flask import Flask, request

from services.common.http import register_error_handlers
from tractcast.data.ingest import ingest_source
from tractcast.data.series import series_matrix
from tractcast.errors import NotFound
from tractcast.geo.index import TractIndex
from tractcast.models.lstm import LSTMForecaster
from tractcast.registry.store import RegistryReader
from tractcast.settings import Settings
from tractcast.validation import parse_coordinate, parse_horizon


def create_app() -> Flask:
    settings = Settings.from_env()
    version = os.environ["BENCH_MODEL_VERSION"]
    index = TractIndex.from_file(str(settings.tracts), settings.tract_id_field)
    path = RegistryReader(settings.store).get_version(version).path
    assert path is not None
    forecaster = LSTMForecaster.load(path)
    series = ingest_source(str(settings.data_source), index).series
    tract_ids, dates, history = series_matrix(series, value="new_cases")
    rows = {tract_id: row for row, tract_id in enumerate(tract_ids)}
    app = Flask(__name__)
    register_error_handlers(app)

    @app.get("/v1/forecast")
    def forecast():  # type: ignore[no-untyped-def]
        lat, lon = parse_coordinate(request.args.get("lat"), request.args.get("lon"))
        horizon = parse_horizon(request.args.get("horizon"))
        tract = index.tract_for_point(lat, lon)
        if tract is None or tract.id not in rows:
            raise NotFound("the point lies outside every tract")
        row = rows[tract.id]
        answer = forecaster.predict(history[row : row + 1])  # one model.predict call
        days = [
            {
                "date": (dates[-1] + np.timedelta64(h + 1, "D")).date().isoformat(),
                "new_cases": round(float(answer.point[0, h]), 2),
                "lower": round(float(answer.lower[0, h]), 2),
                "upper": round(float(answer.upper[0, h]), 2),
            }
            for h in range(horizon)
        ]
        return {"tract": {"id": tract.id, "name": tract.name}, "forecast": days}

    @app.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        return {"status": "ok"}

    return app
