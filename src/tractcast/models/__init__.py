"""models."""

from tractcast.models.base import Forecast, Forecaster, load_forecaster, make_forecaster

__all__ = ["Forecast", "Forecaster", "load_forecaster", "make_forecaster"]
