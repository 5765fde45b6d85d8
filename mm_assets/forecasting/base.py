"""The one interface every per-series model implements, and the sanity envelope every forecast passes.

A model is fitted on one regular series (``series.regularize``) and keeps the short tail of history it needs, so
a stored model can forecast on its own (the online endpoint) or from fresher history (batch scoring with a
champion trained earlier).

Why the envelope lives here: ``Forecaster.predict`` is the one door every forecast of every model goes through
(holdout, backtest, the gate's champion re-score, batch scoring, online scoring), so no model can hand out a
number outside the series' plausible range, whatever its regressors do. The vectorised paths apply the same
``envelope.check`` to their arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mm_assets.forecasting import envelope
from mm_assets.forecasting.panel import window_start
from mm_assets.forecasting.series import DS, SeriesConfig, Y, flag_columns, regressor_kinds, zero_default_columns


class Forecaster:
    """Interface: ``fit(regular_frame)`` then ``predict(future, history=None)`` → array of len(future).

    After ``predict``, ``last_envelope_`` says whether (and why) the model's own forecast was replaced by the
    series' baseline (None: it was not).
    """

    name = "base"

    def __init__(self, cfg: SeriesConfig, **params: Any):
        self.cfg = cfg
        self.params = params
        self.tail_ = None
        self.kinds_: dict[str, str] = {}
        self.recent_max_: float = np.nan
        self.last_envelope_: str | None = None

    @property
    def tail_(self) -> pd.DataFrame | None:
        """The stored history forecasts start from. A stored model keeps it packed (``PackedTail``) and unpacks
        it when it is first read: the gate and scoring load every model of a run, most never read it."""
        tail = self.__dict__.get("_tail")
        if isinstance(tail, PackedTail):
            tail = self.__dict__["_tail"] = tail.frame()
        return tail

    @tail_.setter
    def tail_(self, frame: pd.DataFrame | None) -> None:
        self.__dict__["_tail"] = frame

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_tail"] = PackedTail.of(state.get("_tail"))
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        if "tail_" in state:  # pickled before tails were packed
            state["_tail"] = state.pop("tail_")
        self.__dict__.update(state)

    @property
    def binary_(self) -> tuple[str, ...]:
        """Flags and shares (0 without a promotion; never standardised)."""
        return zero_default_columns(self.kinds_)

    @property
    def flags_(self) -> tuple[str, ...]:
        """Regressors whose future value is 0 where no plan sets it: the 0/1 flags (``series.flag_columns``)."""
        return flag_columns(self.kinds_)

    @property
    def tail_length(self) -> int:
        return self.cfg.season

    def fit(self, frame: pd.DataFrame) -> Forecaster:
        rows = self.fit_rows(frame)
        self.kinds_ = regressor_kinds(rows, self.cfg.regressors)
        self._fit(rows)
        # the stored history forecasts start from: its newest tail_length periods, from an observed target on, so
        # that its fill gives every period the value the whole history gives it (a hole at its start would be
        # back-filled from later values)
        self.tail_ = frame.iloc[window_start(frame[Y].notna().to_numpy(), self.tail_length):].copy()
        self.recent_max_ = envelope.recent_max(frame[Y].to_numpy(dtype=float), self.cfg)
        self.recent_periods_ = min(len(frame), envelope.window(self.cfg))
        return self

    def fit_rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows of a regular frame that a fit reads and its regressors' kinds are decided on: all of them, unless
        the model learns from a training window. The stored tail and the envelope's reference read the whole."""
        return frame

    def start_from(self, fitted: Forecaster) -> None:
        """Before ``fit``: a model of the same type fitted on a shorter history of the same series (the holdout's).
        A model fitted by an iterative optimiser may start from its parameters and converge sooner; the others
        ignore it."""

    def _fit(self, frame: pd.DataFrame) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def predict(self, future: pd.DataFrame, history: pd.DataFrame | None = None) -> np.ndarray:
        history = self.tail_ if history is None else history
        if history is None:
            raise RuntimeError(f"{self.name} model is not fitted")
        pred, reason = self.within_envelope(
            np.asarray(self._predict(history, future), dtype=float), history[Y].to_numpy(dtype=float))
        self.last_envelope_ = reason
        if reason is None:
            return pred
        from mm_assets.forecasting.baseline import Baseline

        return Baseline(self.cfg).fit(history)._predict(history, future)

    def within_envelope(self, pred: np.ndarray, y_hist: np.ndarray) -> tuple[np.ndarray, str | None]:
        """The forecast clipped at 0, and why the sanity envelope rejects it (None: it passes)."""
        return self.within_envelope_of(pred, self.envelope_reference(y_hist))

    @property
    def recent_periods(self) -> int:
        """Periods of its fit data that ``recent_max_`` was read over (a model stored before it was recorded: the
        envelope's whole window, as then)."""
        return int(self.__dict__.get("recent_periods_", envelope.window(self.cfg)))

    def envelope_reference(self, y_hist: np.ndarray) -> float:
        """The recent maximum the envelope scales: of ``y_hist``, and of the fit's data when the history is shorter
        than what the fit read (a stored tail: ``envelope.with_fit_reference``). Depends on the history only, so a
        caller that forecasts one history many times (the online what-if path) computes it once."""
        return float(envelope.with_fit_reference(envelope.recent_max(y_hist, self.cfg), len(y_hist),
                                                 self.recent_max_, self.recent_periods))

    def within_envelope_of(self, pred: np.ndarray, reference: float) -> tuple[np.ndarray, str | None]:
        """``within_envelope`` against a reference computed before (``envelope_reference``)."""
        pred = np.clip(pred, 0.0, None)  # NaN stays NaN: the envelope catches it
        return pred, envelope.violation(pred, reference, self.cfg.envelope_multiple)

    def _predict(self, history: pd.DataFrame, future: pd.DataFrame) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def gap_from(self, history: pd.DataFrame, future: pd.DataFrame) -> int:
        """Periods between the history's end and the first future period (the lead time)."""
        if len(future) == 0:
            return 0
        delta = (future.index[0] - history.index[-1]) / self.cfg.step
        return max(int(round(delta)) - 1, 0)

    @property
    def last_ds(self) -> pd.Timestamp:
        """The last period the model saw; read without unpacking a stored tail (the gate asks every champion)."""
        tail = self.__dict__.get("_tail")
        if isinstance(tail, PackedTail):
            return pd.Timestamp(tail.index[-1])
        assert tail is not None
        return tail.index[-1]

    def last_regressors(self) -> dict[str, float]:
        assert self.tail_ is not None
        return {c: float(self.tail_[c].iloc[-1]) for c in self.cfg.regressors}


def filled(y: pd.Series) -> np.ndarray:
    """The target with missing periods carried forward (then back, then 0): what lags and baselines read."""
    return y.ffill().bfill().fillna(0.0).to_numpy(dtype=float)


class PackedTail:
    """A stored tail as the arrays it is made of (its dates, its float values): loading
    arrays is a tenth of the time of loading a DataFrame. ``of`` keeps a frame it cannot pack exactly (columns
    that are not float, dates with a time zone) as it is."""

    __slots__ = ("index", "name", "columns", "values")

    def __init__(self, index: np.ndarray, name: str | None, columns: list[str], values: np.ndarray):
        self.index, self.name, self.columns, self.values = index, name, columns, values

    def __getstate__(self) -> tuple:
        return self.index, self.name, self.columns, self.values

    def __setstate__(self, state: tuple) -> None:
        self.index, self.name, self.columns, self.values = state

    @classmethod
    def of(cls, frame: pd.DataFrame | PackedTail | None) -> pd.DataFrame | PackedTail | None:
        if not isinstance(frame, pd.DataFrame) or not isinstance(frame.index, pd.DatetimeIndex) \
                or frame.index.tz is not None or not all(dt == np.float64 for dt in frame.dtypes):
            return frame
        return cls(frame.index.to_numpy().copy(), frame.index.name, list(frame.columns), frame.to_numpy(dtype=float))

    def frame(self) -> pd.DataFrame:
        index = pd.DatetimeIndex(self.index, name=self.name)
        return pd.DataFrame(self.values, index=index, columns=self.columns)


def packed_tail(panel, k: int, lo: int, regressors) -> PackedTail:
    """Series ``k`` of a ``panel.Panel``, its periods from ``lo`` on, packed: the tail a model fitted on it stores
    (as ``Forecaster.fit`` stores its frame's), built from the panel's arrays without a frame."""
    length = int(panel.length[k])
    values = np.column_stack([panel.y[k, lo:length], *(panel.regs[c][k, lo:length] for c in regressors)])
    return PackedTail(panel.dates(k, lo, length), DS, [Y, *regressors], values)
