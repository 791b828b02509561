"""A global LSTM over every tract: `lookback` days in, `horizon` days out, 80% intervals.

TensorFlow and Keras are imported inside functions only, so importing tractcast.models stays light.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tractcast.errors import InvalidInput
from tractcast.models.base import QUANTILES, Forecast, check_history, interval_from_log_quantiles

MODEL_FILE = "model.h5"
STATE_FILE = "lstm.json"
FEATURES = ("log1p_minus_window_level", "weekday_sin", "weekday_cos", "window_level")
LEVEL_SCALE = 10.0  # log1p of ~20,000 cases; keeps the level feature near [0, 1]
MAX_LOG_CASES = 30.0  # guards expm1 against overflow on a runaway output


def window_features(log_window: np.ndarray, weekdays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs (n, lookback, 4) for log1p windows (n, lookback), and each window's level."""
    level = log_window.mean(axis=1)
    angle = 2.0 * np.pi * weekdays / 7.0
    features = np.stack(
        [
            log_window - level[:, None],
            np.sin(angle),
            np.cos(angle),
            np.broadcast_to(level[:, None] / LEVEL_SCALE, log_window.shape),
        ],
        axis=-1,
    )
    return features.astype(np.float32), level


def window_origins(
    n_tracts: int, first: int, last: int, limit: int, rng: np.random.Generator
) -> np.ndarray:
    """(tract, day) pairs whose day starts a target window; a uniform sample of `limit` at most."""
    days = np.arange(first, last + 1)
    pairs = np.stack(np.meshgrid(np.arange(n_tracts), days, indexing="ij"), axis=-1).reshape(-1, 2)
    if len(pairs) > limit:
        pairs = pairs[np.sort(rng.choice(len(pairs), size=limit, replace=False))]
    return pairs


def training_windows(
    log_history: np.ndarray, origins: np.ndarray, lookback: int, horizon: int, first_weekday: int
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets (log1p cases minus the input window's level) for each origin."""
    tracts, days = origins[:, :1], origins[:, 1:]
    input_days = days + np.arange(-lookback, 0)
    features, level = window_features(
        log_history[tracts, input_days], (first_weekday + input_days) % 7
    )
    targets = log_history[tracts, days + np.arange(horizon)] - level[:, None]
    return features, targets.astype(np.float32)


def build_model(lookback: int, horizon: int, units: int, learning_rate: float) -> Any:
    """An LSTM encoder and a dense head emitting all horizons at once (built-in layers only)."""
    import keras

    inputs = keras.Input(shape=(lookback, len(FEATURES)), name="window")
    hidden = keras.layers.LSTM(units, name="encoder")(inputs)
    hidden = keras.layers.Dense(units, activation="relu", name="hidden")(hidden)
    outputs = keras.layers.Dense(horizon, name="log_cases")(hidden)
    model = keras.Model(inputs, outputs, name="tractcast_lstm")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mse")
    return model


def seed_everything(seed: int) -> None:
    """Make training repeatable: same data and config give the same weights."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


class LSTMForecaster:
    """Global LSTM on log1p cases relative to each window's mean, with weekday features."""

    family = "lstm"

    def __init__(
        self,
        horizon: int = 14,
        lookback: int = 28,
        units: int = 32,
        epochs: int = 30,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        seed: int = 42,
        max_windows: int = 20000,
        validation_fraction: float = 0.1,
        patience: int = 4,
        first_weekday: int = 0,
    ) -> None:
        self.horizon = horizon
        self.lookback = lookback
        self.units = units
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.seed = seed
        self.max_windows = max_windows
        self.validation_fraction = validation_fraction
        self.patience = patience
        # weekday (0 = Monday) of column 0 of every history this model sees
        self.first_weekday = first_weekday
        self.model: Any = None
        self.low_q: np.ndarray | None = None
        self.high_q: np.ndarray | None = None
        self.epochs_trained = 0

    def params(self) -> dict[str, Any]:
        return {
            "horizon": self.horizon,
            "lookback": self.lookback,
            "units": self.units,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "seed": self.seed,
            "max_windows": self.max_windows,
            "validation_fraction": self.validation_fraction,
            "patience": self.patience,
            "first_weekday": self.first_weekday,
        }

    def validation_days(self, n_days: int) -> int:
        """Days at the end of the history kept for early stopping and interval calibration."""
        return max(2 * self.horizon, round(self.validation_fraction * n_days))

    def fit(self, history: np.ndarray) -> None:
        import keras

        history = check_history(history, self.lookback + 4 * self.horizon)
        n_tracts, n_days = history.shape
        split = n_days - self.validation_days(n_days)
        if split - self.horizon < self.lookback:
            raise InvalidInput(f"history of {n_days} days is too short to train and validate")
        seed_everything(self.seed)
        rng = np.random.default_rng(self.seed)
        log_history = np.log1p(history)
        train = window_origins(n_tracts, self.lookback, split - self.horizon, self.max_windows, rng)
        valid = window_origins(
            n_tracts, split, n_days - self.horizon, max(1, self.max_windows // 4), rng
        )
        x_train, y_train = training_windows(
            log_history, train, self.lookback, self.horizon, self.first_weekday
        )
        x_valid, y_valid = training_windows(
            log_history, valid, self.lookback, self.horizon, self.first_weekday
        )
        model = build_model(self.lookback, self.horizon, self.units, self.learning_rate)
        stop = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=self.patience, restore_best_weights=True
        )
        run = model.fit(
            x_train,
            y_train,
            validation_data=(x_valid, y_valid),
            epochs=self.epochs,
            batch_size=self.batch_size,
            callbacks=[stop],
            shuffle=True,
            verbose=0,
        )
        self.model = model
        self.epochs_trained = len(run.history["loss"])
        residuals = y_valid - self.predict_log(x_valid)
        low, high = np.quantile(residuals, QUANTILES, axis=0)
        self.low_q, self.high_q = low.astype(float), high.astype(float)

    def predict_log(self, features: np.ndarray) -> np.ndarray:
        """Raw model outputs: log1p cases relative to each input window's level."""
        return np.asarray(self.model.predict(features, batch_size=4096, verbose=0), dtype=float)

    def predict(self, history: np.ndarray) -> Forecast:
        if self.model is None or self.low_q is None or self.high_q is None:
            raise RuntimeError("lstm forecaster must be fitted or loaded before predicting")
        history = check_history(history, self.lookback)
        n_tracts, n_days = history.shape
        days = np.arange(n_days - self.lookback, n_days)
        weekdays = np.broadcast_to((self.first_weekday + days) % 7, (n_tracts, self.lookback))
        features, level = window_features(np.log1p(history[:, -self.lookback :]), weekdays)
        log_point = np.clip(self.predict_log(features) + level[:, None], 0.0, MAX_LOG_CASES)
        return interval_from_log_quantiles(np.expm1(log_point), self.low_q, self.high_q)

    def save(self, directory: Path) -> None:
        if self.model is None or self.low_q is None or self.high_q is None:
            raise RuntimeError("lstm forecaster must be fitted before saving")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save(directory / MODEL_FILE)
        state = {
            "family": self.family,
            "params": self.params(),
            "features": list(FEATURES),
            "scaling": "log1p, minus the mean of each input window's log1p values",
            "level_scale": LEVEL_SCALE,
            "low_q": self.low_q.tolist(),
            "high_q": self.high_q.tolist(),
            "epochs_trained": self.epochs_trained,
        }
        (directory / STATE_FILE).write_text(json.dumps(state, indent=2))

    @classmethod
    def load(cls, directory: Path) -> LSTMForecaster:
        """Rebuild a fitted forecaster from model.h5 and lstm.json written by save."""
        import keras

        directory = Path(directory)
        state = json.loads((directory / STATE_FILE).read_text())
        forecaster = cls(**state["params"])
        forecaster.model = keras.models.load_model(
            directory / MODEL_FILE, compile=False, safe_mode=True
        )
        forecaster.low_q = np.asarray(state["low_q"], dtype=float)
        forecaster.high_q = np.asarray(state["high_q"], dtype=float)
        forecaster.epochs_trained = int(state.get("epochs_trained", 0))
        return forecaster
