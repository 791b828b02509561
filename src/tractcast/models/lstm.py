"""A global LSTM over every tract: `lookback` days in, `horizon` days out, 80% intervals.

Each window is scaled on its own (log1p cases minus the window's mean), so large and small tracts
train together. The targets are relative to an anchor per target day: with `anchor="seasonal"`
(the default) the log1p of the weekly seasonal naive's value for that day (the same weekday in the
last week of the window), a skip connection, so the network learns a correction for level and
trend and inherits the weekday reporting pattern (Monday dips, holidays) exactly; with
`anchor="level"` (versions saved before the anchor existed) the window's mean. The model emits
three quantiles per horizon (10%, 50%, 90%) trained with a pinball loss in log1p space;
quantiles survive the monotone back-transform, so the median is the point forecast and the outer
pair bounds the 80% interval. Each training window weighs its typical daily cases to the
power `level_weight` (0.5), so the loss follows errors in cases as the backtest counts them,
not relative errors where a village's window counts as much as a city's; each epoch draws its
`max_windows` windows afresh from a pool `window_pool` (4) times as large, so a fit sees more
of the history at the same cost and depends less on its seed's sample. A conformal step on
the newest days (held out from training) scales the gaps between the median and the outer
quantiles, per horizon, to what those days need for each interval (50%, 80%, 95%), the newest
of them weighing most (`calibration_half_life`); each window's gaps are first widened by
1 + `growth_widening` (0.5) x how fast its tract's level moved over the last two weeks of its
input, so a tract whose level is changing fast gets a wider band than a steady one, and the
factor is fitted on what that widening leaves. With `outlier_threshold` > 0 (off by default),
days whose all-tract total is abnormal for their weekday (a holiday, the catch-up after it) are
set back to their weekday's usual share in the inputs and the anchor.

TensorFlow and Keras are imported inside functions only, so importing tractcast.models stays light.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tractcast import progress
from tractcast.errors import InvalidInput
from tractcast.models.base import (
    INTERVAL,
    INTERVALS,
    QUANTILES,
    Forecast,
    check_history,
    scaled_interval_factors,
)

MODEL_FILE = "model.h5"
STATE_FILE = "lstm.json"
FEATURES = (
    "log1p_minus_window_level",
    "weekday_sin",
    "weekday_cos",
    "window_level",
    "all_tracts_log1p_minus_window_level",
)
OUTPUT_QUANTILES = (QUANTILES[0], 0.5, QUANTILES[1])  # lower bound, point, upper bound
LEVEL_SCALE = 10.0  # log1p of ~20,000 cases; keeps the level feature near [0, 1]
MAX_LOG_CASES = 30.0  # guards expm1 against overflow on a runaway output
MIN_STEPS, MIN_BATCH = 32, 16  # small histories train on smaller batches, not on fewer steps
ANCHORS = ("seasonal", "level")
PERIOD = 7  # the seasonal anchor's period: the same weekday last week

log = logging.getLogger(__name__)

# oneDNN, under TensorFlow's matrix products, picks its kernels by the CPU's instruction set when
# it first runs, and an AVX-512 kernel sums in another order than an AVX2 one: the same data and
# seed then train other weights (metrics differing in the third digit) on two x86-64 machines.
# Capped at AVX2, which nearly every x86-64 server has, they train the same; TensorFlow reads
# this before its first product, and it is imported only from this module's functions.
# ONEDNN_MAX_CPU_ISA set in the environment (ALL for no cap) wins.
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")


def outlier_shifts(log_total: np.ndarray, threshold: float) -> np.ndarray:
    """(n, lookback) log1p amount by which each window day's all-tract total is abnormal.

    `log_total` (n, lookback) is log1p of the all-tract total over each window. Its whole weeks,
    counted back from the window's end, give each day's offset from its week's median; a day
    whose offset is more than `threshold` away from the median offset of its weekday over those
    weeks (a holiday's dip, the catch-up after it) is abnormal by that difference, every other
    day by 0. Found in the data itself, with no calendar: every tract reports through the same
    days. A threshold of 0 (versions saved before) finds nothing.
    """
    shifts = np.zeros_like(log_total)
    n, lookback = log_total.shape
    weeks = lookback // PERIOD
    if threshold <= 0 or weeks < 3:  # two weeks cannot say which of them is abnormal
        return shifts
    tail = log_total[:, lookback - weeks * PERIOD :].reshape(n, weeks, PERIOD)
    offset = tail - np.median(tail, axis=2, keepdims=True)
    deviation = offset - np.median(offset, axis=1, keepdims=True)
    abnormal = np.where(np.abs(deviation) > threshold, deviation, 0.0)
    shifts[:, lookback - weeks * PERIOD :] = abnormal.reshape(n, weeks * PERIOD)
    return shifts


def window_features(
    log_history: np.ndarray,
    log_total: np.ndarray,
    tracts: np.ndarray,
    input_days: np.ndarray,
    first_weekday: int,
    outlier_threshold: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model inputs (n, lookback, 5), each window's level, and its days' log1p values.

    `tracts` (n, 1) and `input_days` (n, lookback) pick the windows out of the (n_tracts, n_days)
    log1p history; `log_total` is log1p of the all-tract total per day, the shared context. Days
    whose all-tract total is abnormal for their weekday (`outlier_shifts`) are moved back to
    their weekday's usual share in every tract, in the inputs and in the values returned for
    the anchor, so a holiday week is not read as a trend nor repeated into the forecast.
    """
    context = log_total[input_days]
    shifts = outlier_shifts(context, outlier_threshold)
    window = log_history[tracts, input_days] - shifts
    context = context - shifts
    level = window.mean(axis=1)
    angle = 2.0 * np.pi * ((first_weekday + input_days) % 7) / 7.0
    features = np.stack(
        [
            window - level[:, None],
            np.sin(angle),
            np.cos(angle),
            np.broadcast_to(level[:, None] / LEVEL_SCALE, window.shape),
            context - context.mean(axis=1, keepdims=True),
        ],
        axis=-1,
    )
    return features.astype(np.float32), level, window


def window_origins(
    n_tracts: int, first: int, last: int, limit: int, rng: np.random.Generator
) -> np.ndarray:
    """(tract, day) pairs whose day starts a target window: a uniform sample of `limit`, plus one
    window at a random day for each tract the sample missed, so every tract is trained on."""
    days = np.arange(first, last + 1)
    pairs = np.stack(np.meshgrid(np.arange(n_tracts), days, indexing="ij"), axis=-1).reshape(-1, 2)
    if len(pairs) <= limit:
        return pairs
    pairs = pairs[np.sort(rng.choice(len(pairs), size=limit, replace=False))]
    missed = np.setdiff1d(np.arange(n_tracts), pairs[:, 0])
    if len(missed):  # thousands of tracts: a uniform sample leaves some out (e^-2 at 2 each)
        extra = np.column_stack([missed, rng.integers(first, last + 1, size=len(missed))])
        pairs = np.concatenate([pairs, extra])
        pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    return pairs


def anchor_values(
    window: np.ndarray,
    level: np.ndarray,
    horizon: int,
    anchor: str,
    weeks: int = 1,
) -> np.ndarray:
    """(n, horizon) log1p values the outputs are relative to, from the (n, lookback) windows.

    "seasonal": the same weekday in the window's last `weeks` weeks (mean of log1p; with one
    week the seasonal naive); "level": the window's mean for every target day.
    """
    if anchor == "level":
        return np.repeat(level[:, None], horizon, axis=1)
    lookback = window.shape[1]
    same_day = lookback - PERIOD + np.arange(horizon) % PERIOD
    return np.mean([window[:, same_day - PERIOD * k] for k in range(weeks)], axis=0)


def training_windows(
    log_history: np.ndarray,
    log_total: np.ndarray,
    origins: np.ndarray,
    lookback: int,
    horizon: int,
    first_weekday: int,
    anchor: str = "seasonal",
    anchor_weeks: int = 1,
    outlier_threshold: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets (log1p cases minus each target day's anchor) for each origin."""
    tracts, days = origins[:, :1], origins[:, 1:]
    features, level, window = window_features(
        log_history, log_total, tracts, days + np.arange(-lookback, 0), first_weekday,
        outlier_threshold,
    )  # fmt: skip
    base = anchor_values(window, level, horizon, anchor, anchor_weeks)
    targets = log_history[tracts, days + np.arange(horizon)] - base
    return features, targets.astype(np.float32)


def level_weights(features: np.ndarray, power: float) -> np.ndarray:
    """Each window's weight in the loss: its typical daily cases (exp of its mean log1p) to
    `power`, scaled to a mean of 1. The loss is in log1p space, where a small tract's window
    counts as much as a city's; errors that users and the backtest count are in cases, so
    `power` 0.5 gives a window of 10,000 cases a day 10 times the weight of one of 100."""
    weights = np.exp(power * LEVEL_SCALE * features[:, 0, FEATURES.index("window_level")])
    return (weights / weights.mean()).astype(np.float32)


def epoch_samples(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    per_epoch: int,
    batch: int,
    rng: np.random.Generator,
) -> Any:
    """Training batches of (inputs, targets, weights): `per_epoch` windows of the pool, drawn
    afresh and shuffled at every epoch (all of them, shuffled, when the pool is no larger)."""
    import keras

    class EpochSample(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.on_epoch_end()

        def __len__(self) -> int:
            return -(-per_epoch // batch)

        def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            pick = self.order[i * batch : (i + 1) * batch]
            return x[pick], y[pick], w[pick]

        def on_epoch_end(self) -> None:
            self.order = rng.permutation(len(x))[:per_epoch]

    return EpochSample()


def pinball_loss(y_true: Any, y_pred: Any) -> Any:
    """Pinball loss of the (batch, horizon, 3) quantile outputs against (batch, horizon), per
    window (Keras weighs and averages the windows)."""
    import keras

    ops = keras.ops
    levels = ops.convert_to_tensor(OUTPUT_QUANTILES, dtype=y_pred.dtype)
    error = ops.expand_dims(y_true, -1) - y_pred
    return ops.mean(ops.maximum(levels * error, (levels - 1.0) * error), axis=(1, 2))


def build_model(lookback: int, horizon: int, units: int) -> Any:
    """An LSTM encoder and three dense heads: median, and gaps below and above it that are >= 0.

    Built-in layers only, so model.h5 loads with safe_mode and no custom objects; the gaps keep
    the quantiles from crossing. Output shape (batch, horizon, 3).
    """
    import keras

    layers = keras.layers
    inputs = keras.Input(shape=(lookback, len(FEATURES)), name="window")
    hidden = layers.LSTM(units, name="encoder")(inputs)
    hidden = layers.Dense(units, activation="relu", name="hidden")(hidden)
    median = layers.Dense(horizon, name="median")(hidden)
    below = layers.Dense(horizon, activation="softplus", name="gap_below")(hidden)
    above = layers.Dense(horizon, activation="softplus", name="gap_above")(hidden)
    stacked = layers.Concatenate(name="quantiles_flat")(
        [
            layers.Subtract(name="lower")([median, below]),
            median,
            layers.Add(name="upper")([median, above]),
        ]
    )
    outputs = layers.Permute((2, 1), name="log_cases")(layers.Reshape((3, horizon))(stacked))
    return keras.Model(inputs, outputs, name="tractcast_lstm")


def training_device() -> str:
    """What Keras trains on here: the first GPU TensorFlow sees, else the CPU."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU (TensorFlow sees no GPU)"
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"{gpus[0].name} ({details.get('device_name', 'unnamed')}; {len(gpus)} GPU(s) visible)"


def seed_everything(seed: int) -> None:
    """Make training repeatable: same data and config give the same weights."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def recency_weights(origins: np.ndarray, half_life: float) -> np.ndarray | None:
    """Weights of held-out windows by their origin day: 1 at the newest, halving every
    `half_life` days; None (all alike) for a half-life of 0."""
    if half_life <= 0:
        return None
    return np.asarray(0.5 ** ((origins.max() - origins) / half_life), dtype=float)


def growth_spread(features: np.ndarray, widening: float) -> np.ndarray:
    """(n, 1) factor on each window's gaps: 1 + `widening` x the log1p change between the mean
    of its last week and of the week before (either sign), so bands widen where the level moves
    fast (a wave's start or fall), which the held-out days' errors alone learn too late."""
    if widening <= 0:
        return np.ones((len(features), 1))
    days = min(PERIOD, features.shape[1] // 2)
    window = features[:, :, FEATURES.index("log1p_minus_window_level")]
    change = window[:, -days:].mean(axis=1) - window[:, -2 * days : -days].mean(axis=1)
    return (1.0 + widening * np.abs(change))[:, None].astype(float)


def quantile_gaps(
    quantiles: np.ndarray, spread: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(median, gap below it, gap above it) of (n, horizon, 3) log1p quantiles, each window's
    gaps multiplied by its `spread` (growth_spread)."""
    median = quantiles[..., 1]
    return median, spread * (median - quantiles[..., 0]), spread * (quantiles[..., 2] - median)


def interval_scales(
    targets: np.ndarray,
    quantiles: np.ndarray,
    weights: np.ndarray | None = None,
    spread: np.ndarray | None = None,
) -> dict[float, np.ndarray]:
    """Per interval level and horizon, the factor on the gaps around the median (held-out days),
    each window's score counted with its weight, its gaps first multiplied by its `spread`."""
    median, below, above = quantile_gaps(quantiles, 1.0 if spread is None else spread)
    return {
        level: scaled_interval_factors(median, below, above, targets, level, weights)
        for level in INTERVALS
    }


def epoch_progress(epochs: int) -> Any:
    """A Keras callback that shows each epoch's loss as the detail of the current step."""
    import keras

    class EpochProgress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            loss = (logs or {}).get("loss")
            shown = f" loss {loss:.4f}" if loss is not None else ""
            progress.detail(f"epoch {epoch + 1}/{epochs}{shown}")

    return EpochProgress()


class LSTMForecaster:
    """Global LSTM on log1p cases relative to each window's mean, with quantile outputs."""

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
        validation_days: int = 42,
        patience: int = 4,
        first_weekday: int = 0,
        warm_epochs: int = 8,
        anchor: str = "seasonal",
        anchor_weeks: int = 2,
        outlier_threshold: float = 0.0,
        calibration_half_life: float = 14.0,
        level_weight: float = 0.5,
        window_pool: int = 4,
        growth_widening: float = 0.5,
    ) -> None:
        if anchor not in ANCHORS:
            raise InvalidInput(f"anchor must be one of {', '.join(ANCHORS)}, got {anchor!r}")
        if anchor == "seasonal" and not 1 <= anchor_weeks <= lookback // PERIOD:
            raise InvalidInput(
                f"the seasonal anchor over {anchor_weeks} week(s) needs a lookback of "
                f"{PERIOD * max(anchor_weeks, 1)} days or more, got {lookback}"
            )
        self.horizon = horizon
        self.lookback = lookback
        self.units = units
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.seed = seed
        self.max_windows = max_windows
        # the newest days, held out of training: early stopping and interval calibration
        self.validation_days = validation_days
        self.patience = patience
        # weekday (0 = Monday) of column 0 of every history this model sees
        self.first_weekday = first_weekday
        # a fit that starts from an earlier fit's weights trains for at most this many epochs
        self.warm_epochs = warm_epochs
        # what the outputs are relative to: the seasonal naive per target day, or the window mean
        self.anchor = anchor
        self.anchor_weeks = anchor_weeks  # the seasonal anchor: mean over this many weeks
        # log1p distance from its weekday's usual share of the week beyond which a day's
        # all-tract total is abnormal (holidays) and is set back in the inputs and anchor; 0: off
        # (the default: on Italy it cost more than it gained, see the README)
        self.outlier_threshold = outlier_threshold
        # the interval calibration weighs each held-out origin by recency, halving per this
        # many days; 0 weighs them all alike (versions saved before)
        self.calibration_half_life = calibration_half_life
        # each training window weighs its typical daily cases to this power (0: all alike, as
        # versions saved before): the loss then follows errors in cases, not in log1p
        self.level_weight = level_weight
        # training draws `max_windows` windows afresh at every epoch from a pool of this many
        # times as many (1: one fixed sample, as versions saved before)
        self.window_pool = window_pool
        # every band's gaps widen by 1 + this x its tract's change in log1p level over the last
        # two weeks, in the calibration and in forecasts (0: versions saved before)
        self.growth_widening = growth_widening
        self.initial_weights: list[np.ndarray] | None = None
        self.model: Any = None
        # per interval level, the factor on the quantile heads' gaps (scaled conformal)
        self.scales: dict[float, np.ndarray] = {}
        self.adjustment: np.ndarray | None = None  # a version saved before the scales: 80% only
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
            "validation_days": self.validation_days,
            "patience": self.patience,
            "first_weekday": self.first_weekday,
            "warm_epochs": self.warm_epochs,
            "anchor": self.anchor,
            "anchor_weeks": self.anchor_weeks,
            "outlier_threshold": self.outlier_threshold,
            "calibration_half_life": self.calibration_half_life,
            "level_weight": self.level_weight,
            "window_pool": self.window_pool,
            "growth_widening": self.growth_widening,
        }

    # what a manifest written before a parameter existed meant by leaving it out
    legacy_params: ClassVar[dict[str, Any]] = {
        "anchor": "level",
        "anchor_weeks": 1,
        "outlier_threshold": 0.0,
        "calibration_half_life": 0.0,
        "level_weight": 0.0,
        "window_pool": 1,
        "growth_widening": 0.0,
    }

    @property
    def min_days(self) -> int:
        """The shortest history fit accepts: a few training windows before the held-out days."""
        return self.lookback + 2 * self.horizon + max(self.validation_days, self.horizon)

    def warm_start(self, other: Any) -> None:
        """Start the next fit from another fitted LSTM's weights (same layout), fewer epochs."""
        same = getattr(other, "model", None) is not None and (
            other.lookback,
            other.horizon,
            other.units,
            other.anchor,
            other.anchor_weeks,
            other.outlier_threshold,
        ) == (
            self.lookback,
            self.horizon,
            self.units,
            self.anchor,
            self.anchor_weeks,
            self.outlier_threshold,
        )
        self.initial_weights = other.model.get_weights() if same else None

    def batch_for(self, n_windows: int) -> int:
        """`batch_size`, or smaller on little data so that an epoch has MIN_STEPS steps."""
        return max(MIN_BATCH, min(self.batch_size, n_windows // MIN_STEPS))

    def fit(self, history: np.ndarray) -> None:
        import keras

        history = check_history(history, self.min_days)
        log.info("training the LSTM on %s", training_device())
        n_tracts, n_days = history.shape
        split = n_days - max(self.validation_days, self.horizon)
        seed_everything(self.seed)
        rng = np.random.default_rng(self.seed)
        log_history, log_total = np.log1p(history), np.log1p(history.sum(axis=0))
        pool = self.max_windows * self.window_pool
        train = window_origins(n_tracts, self.lookback, split - self.horizon, pool, rng)
        valid = window_origins(
            n_tracts, split, n_days - self.horizon, max(1, self.max_windows // 4), rng
        )
        x_train, y_train = self.training_windows(log_history, log_total, train)
        x_valid, y_valid = self.training_windows(log_history, log_total, valid)
        model = build_model(self.lookback, self.horizon, self.units)
        epochs = self.epochs
        if self.initial_weights is not None:
            model.set_weights(self.initial_weights)
            epochs = min(self.epochs, self.warm_epochs)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=self.learning_rate), loss=pinball_loss
        )
        stop = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=self.patience, restore_best_weights=True
        )
        per_epoch = min(len(x_train), self.max_windows)
        batches = epoch_samples(
            x_train, y_train, level_weights(x_train, self.level_weight), per_epoch,
            self.batch_for(per_epoch), rng,
        )  # fmt: skip
        run = model.fit(
            batches,
            validation_data=(x_valid, y_valid, level_weights(x_valid, self.level_weight)),
            epochs=epochs,
            callbacks=[stop, epoch_progress(self.epochs)],
            verbose=0,
        )
        self.model = model
        self.epochs_trained = len(run.history["loss"])
        recency = recency_weights(valid[:, 1], self.calibration_half_life)
        spread = growth_spread(x_valid, self.growth_widening)
        self.scales = interval_scales(y_valid, self.predict_log(x_valid), recency, spread)
        self.adjustment = None

    def training_windows(
        self, log_history: np.ndarray, log_total: np.ndarray, origins: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        return training_windows(
            log_history, log_total, origins, self.lookback, self.horizon, self.first_weekday,
            self.anchor, self.anchor_weeks, self.outlier_threshold,
        )  # fmt: skip

    def predict_log(self, features: np.ndarray) -> np.ndarray:
        """Raw model outputs (n, horizon, 3): log1p quantiles relative to each target's anchor."""
        # a direct call: model.predict would build a tf.data pipeline for every small batch
        chunks = [
            np.asarray(self.model(features[start : start + 4096], training=False), dtype=float)
            for start in range(0, len(features), 4096)
        ]
        return np.concatenate(chunks, axis=0)

    def predict(self, history: np.ndarray, tracts: np.ndarray | None = None) -> Forecast:
        """Forecast after `history` (every tract, or the rows `tracts`); the all-tract context is
        the sum over every tract passed in, whichever rows are forecast."""
        if self.model is None or (not self.scales and self.adjustment is None):
            raise RuntimeError("lstm forecaster must be fitted or loaded before predicting")
        history = check_history(history, self.lookback)
        # only the last `lookback` days are read: log1p of the rest would be thrown away
        recent = history[:, history.shape[1] - self.lookback :]
        log_total = np.log1p(recent.sum(axis=0))
        log_recent = np.log1p(recent if tracts is None else recent[tracts])
        n_rows = log_recent.shape[0]
        days = np.broadcast_to(np.arange(self.lookback), (n_rows, self.lookback))
        features, level, window = window_features(
            log_recent, log_total, np.arange(n_rows)[:, None], days,
            self.first_weekday + history.shape[1] - self.lookback, self.outlier_threshold,
        )  # fmt: skip
        base = anchor_values(window, level, self.horizon, self.anchor, self.anchor_weeks)
        log_q = self.predict_log(features) + base[:, :, None]
        if not self.scales:
            return self.additive_forecast(log_q)
        median, below, above = quantile_gaps(log_q, growth_spread(features, self.growth_widening))
        point = self.cases(median)
        bands = {
            band: (
                np.minimum(self.cases(median - scale * below), point),
                np.maximum(self.cases(median + scale * above), point),
            )
            for band, scale in self.scales.items()
        }
        lower, upper = bands.pop(INTERVAL)
        return Forecast(point=point, lower=lower, upper=upper, bands=bands)

    @staticmethod
    def cases(log_cases: np.ndarray) -> np.ndarray:
        """Daily cases from log1p cases, clipped to [0, exp(MAX_LOG_CASES)]."""
        return np.expm1(np.clip(log_cases, 0.0, MAX_LOG_CASES))

    def additive_forecast(self, log_q: np.ndarray) -> Forecast:
        """The 80% interval of a version saved before the scales: a shift of both bounds."""
        assert self.adjustment is not None
        log_q[..., 0] -= self.adjustment
        log_q[..., 2] += self.adjustment
        lower, point, upper = self.cases(log_q).transpose(2, 0, 1)
        # the conformal shift may cross the bounds over the point; the interval always holds it
        return Forecast(point=point, lower=np.minimum(lower, point), upper=np.maximum(upper, point))

    def save(self, directory: Path) -> None:
        if self.model is None or (not self.scales and self.adjustment is None):
            raise RuntimeError("lstm forecaster must be fitted before saving")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        # an uncompiled twin carries the weights: model.h5 then names no custom loss
        twin = build_model(self.lookback, self.horizon, self.units)
        twin.set_weights(self.model.get_weights())
        twin.save(directory / MODEL_FILE)
        state = {
            "family": self.family,
            "params": self.params(),
            "features": list(FEATURES),
            "outputs": {"quantiles": list(OUTPUT_QUANTILES), "point": 0.5},
            "scaling": "log1p, minus the mean of each input window's log1p values",
            "outputs_relative_to": (
                "log1p of the same weekday in the input window's last week"
                if self.anchor == "seasonal"
                else "the mean of the input window's log1p values"
            ),
            "level_scale": LEVEL_SCALE,
            "scales": {str(level): scale.tolist() for level, scale in self.scales.items()},
            **({} if self.adjustment is None else {"adjustment": self.adjustment.tolist()}),
            "epochs_trained": self.epochs_trained,
        }
        (directory / STATE_FILE).write_text(json.dumps(state, indent=2))

    @classmethod
    def load(cls, directory: Path) -> LSTMForecaster:
        """Rebuild a fitted forecaster from model.h5 and lstm.json written by save."""
        import keras

        directory = Path(directory)
        state = json.loads((directory / STATE_FILE).read_text())
        calibrated = "scales" in state or "adjustment" in state
        if list(state.get("features", [])) != list(FEATURES) or not calibrated:
            raise InvalidInput(f"{directory} holds an LSTM of another layout (an older release)")
        forecaster = cls(**{**cls.legacy_params, **state["params"]})
        forecaster.model = keras.models.load_model(
            directory / MODEL_FILE, compile=False, safe_mode=True
        )
        forecaster.scales = {
            float(level): np.asarray(scale, dtype=float)
            for level, scale in state.get("scales", {}).items()
        }
        if "adjustment" in state:
            forecaster.adjustment = np.asarray(state["adjustment"], dtype=float)
        forecaster.epochs_trained = int(state.get("epochs_trained", 0))
        return forecaster
