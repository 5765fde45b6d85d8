"""One series on a regular time grid, and the future frame a forecast is made on.

Why a regular grid: lags and seasonal positions only mean something when row k is k periods after row 0.
Source data has holes (store-closure days, weeks with no record); they become rows with a missing target
(``y`` NaN) so that training skips them while lag features still line up. Regressors are carried forward
across the holes (a closed day keeps its price).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from mm_assets.forecasting.model_types import AUTO, MODEL_TYPES

DS = "ds"
Y = "y"


DAY, WEEK = pd.Timedelta(days=1), pd.Timedelta(days=7)  # built once: a Timedelta costs microseconds


@dataclass(frozen=True)
class SeriesConfig:
    """What a model needs to know about every series it is trained on."""

    frequency: str = "D"  # D (daily) or W / W-XXX (weekly, 7-day steps anchored at the data)
    horizon: int = 28
    season: int = 7
    regressors: tuple[str, ...] = ()
    min_train_periods: int = 42
    gap: int = 0  # lead time: forecasts cover origin + gap + 1 .. origin + gap + horizon
    extra: dict = field(default_factory=dict)
    auto_candidates: tuple[str, ...] = ("seasonal_naive", "linear", "ets", "prophet")  # ModelType values
    auto_origins: int = 3
    envelope_multiple: float = 3.0  # a forecast above this × the series' recent maximum is replaced
    # min_train_periods of each model type when the settings do not set one (model type -> periods); a backtest
    # of another model type than the configured one uses its own (``for_model``)
    min_train_by_type: tuple[tuple[str, int], ...] = ()
    # the source column the models forecast (columns.target), kept with every model: one trained on another
    # column forecasts another quantity; "" for a model stored before it was kept (not judged)
    target: str = ""
    # the holdout covers at least this many periods, in windows of ``horizon`` (``forecasting.holdout``); 0: one
    holdout_periods: int = 0

    @property
    def holdout_windows(self) -> int:
        """The most windows a series' holdout has: enough of ``horizon`` periods to cover ``holdout_periods``."""
        return max(1, -(-self.holdout_periods // self.horizon))

    @property
    def step(self) -> pd.Timedelta:
        return DAY if self.frequency == "D" else WEEK

    @property
    def is_daily(self) -> bool:
        return self.frequency == "D"

    @property
    def seasonal_lag(self) -> int:
        """The lag the models read as a season: ``season``, or for daily data with the weekly season (the
        calendar's, which their day-of-week features carry) a year back, 364 days."""
        return self.season if self.season > 7 or not self.is_daily else 364

    def for_model(self, model_type: str) -> SeriesConfig:
        """This config with ``model_type``'s own ``min_train_periods`` (the history training would ask of it)."""
        periods = dict(self.min_train_by_type).get(model_type, self.min_train_periods)
        return self if periods == self.min_train_periods else replace(self, min_train_periods=periods)

    @classmethod
    def from_settings(cls, settings) -> SeriesConfig:  # settings: mm_assets.settings.Settings
        return cls(
            frequency=settings.frequency,
            horizon=settings.horizon,
            season=settings.season,
            regressors=tuple(settings.columns.regressors),
            min_train_periods=settings.min_train_periods,
            gap=settings.gap,
            auto_candidates=tuple(settings.model.auto_candidates),
            auto_origins=settings.model.auto_origins,
            envelope_multiple=settings.model.envelope_multiple,
            min_train_by_type=tuple((t, settings.min_train_periods_for(t)) for t in (*MODEL_TYPES, AUTO)),
            target=settings.columns.target,
            holdout_periods=settings.promotion.holdout_periods,
        )


def regularize(frame: pd.DataFrame, cfg: SeriesConfig) -> pd.DataFrame:
    """Series rows (columns ds, y, regressors; any order) → frame indexed by a regular ds grid.

    Rows after the last observed target (planned future rows) are dropped here; see ``split_future``.
    Built from arrays and one frame at the end: every per-series path (the online endpoint's cold load, per-series
    training) calls it, and the same steps as pandas operations took 2.4 ms for three years of days.
    """
    if frame.empty:
        raise ValueError("series has no rows")
    ds = pd.to_datetime(frame[DS])
    t = ds.to_numpy(dtype="datetime64[ns]").view(np.int64)
    observed = frame[Y].notna().to_numpy() & ~ds.isna().to_numpy()
    if not observed.any():
        raise ValueError("series has no observed target values")
    last = t[observed].max()
    keep = np.flatnonzero(~ds.isna().to_numpy() & (t <= last))
    keep = keep[np.argsort(t[keep], kind="stable")]
    t = t[keep]
    repeated = t[1:] == t[:-1]
    if repeated.any():
        first_dup = pd.Timestamp(t[1:][repeated][0])
        raise ValueError(f"series has duplicate timestamps (first: {first_dup.date()})")
    step = cfg.step.value
    offset = t - t[0]
    if (last - t[0]) % step:
        raise ValueError(f"timestamps are not on a {cfg.frequency} grid (step {cfg.step})")
    off_grid = int(np.count_nonzero(offset % step))
    if off_grid:
        raise ValueError(
            f"{off_grid} timestamps are off the {cfg.frequency} grid anchored at {pd.Timestamp(t[0]).date()}; "
            "weekly data must fall on one weekday"
        )
    n = int((last - t[0]) // step) + 1
    pos = offset // step
    holes = n != len(t)
    y = np.full(n, np.nan)
    y[pos] = frame[Y].to_numpy(dtype=float, na_value=np.nan)[keep]
    columns = {Y: y}
    for c in cfg.regressors:
        values = frame[c].to_numpy()[keep]
        if holes or values.dtype.kind not in "iub":  # as a reindex leaves them: a column with holes is float
            values = _carried(np.asarray(frame[c].to_numpy(dtype=float, na_value=np.nan)[keep]), pos, n)
        columns[c] = values
    index = pd.date_range(ds.iloc[keep[0]], periods=n, freq=cfg.step, name=DS)
    return pd.DataFrame(columns, index=index)


def _carried(values: np.ndarray, pos: np.ndarray, n: int) -> np.ndarray:
    """``values`` at grid positions ``pos`` of ``n``, carried forward over the holes and missing values, and the
    first known value back to the start (pandas ``ffill().bfill()``)."""
    out = np.full(n, np.nan)
    out[pos] = values
    known = ~np.isnan(out)
    if known.all() or not known.any():
        return out
    last_known = np.maximum.accumulate(np.where(known, np.arange(n), -1))
    first = int(np.argmax(known))
    return out[np.where(last_known < 0, first, last_known)]


def split_future(frame: pd.DataFrame, cfg: SeriesConfig) -> pd.DataFrame:
    """Planned rows after the last observed target (known future regressors), indexed by ds."""
    observed = frame[Y].notna()
    if not observed.any():
        return frame.iloc[0:0].set_index(DS)
    last_obs = pd.to_datetime(frame.loc[observed, DS]).max()
    fut = frame[pd.to_datetime(frame[DS]) > last_obs][[DS, *cfg.regressors]].copy()
    fut[DS] = pd.to_datetime(fut[DS])
    return fut.set_index(DS).sort_index()


FLAG, SHARE, POSITIVE, SIGNED = "flag", "share", "positive", "signed"
KIND_ORDER = (FLAG, SHARE, POSITIVE, SIGNED)


def kind_of(values: np.ndarray) -> str:
    """The form a regressor enters models in, from its observed values.

    - ``flag``: only 0 and 1 (a promotion or deal flag): as is; its default future value is 0;
    - ``share``: within [0, 1] with zeros (a display share, a fraction of stores with a feature): as is;
      default future value 0;
    - ``positive``: strictly positive (a price, also one below 1 such as a price per ounce): log, and relative
      to its own recent level. A few values of 0 or below (``positive_slips``: a missing price stored as 0, a
      typo) are read as missing, not as a reason to change the column's form: one such price in one store turned
      the price of every series of its batch into a plain number, and their forecasts moved by half;
    - ``signed``: anything else (a temperature, a difference, a count with zeros): as is.
    """
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return SIGNED
    if np.isin(values, (0.0, 1.0)).all():
        return FLAG
    bad = int(np.count_nonzero(values <= 0.0))
    if bad <= positive_slips(values.size):
        return POSITIVE
    if values.min() >= 0.0 and values.max() <= 1.0:
        return SHARE
    return SIGNED


def without_slips(plan: dict[str, np.ndarray], kinds: Mapping[str, str] | None) -> dict[str, np.ndarray]:
    """A plan (per regressor, values over the forecast periods, NaN where it has none) with each planned value of
    0 or below of a ``positive`` (price-like) regressor taken out: no plan there, so the period takes its regular
    price, as the data-quality warning says. The history reads such a value as missing (``kind_of``); planned, it
    was fed to the models as it was, and a price of -5 moved a forecast to well below the same period unplanned."""
    if not kinds:
        return plan
    out = dict(plan)
    for col, values in plan.items():
        if kinds.get(col) == POSITIVE and (np.asarray(values) <= 0.0).any():
            out[col] = np.where(np.asarray(values) > 0.0, values, np.nan)
    return out


# values of 0 or below a positive (price-like) column may hold, read as missing: this share of its observed values,
# in a column of at least POSITIVE_SLIPS_FROM values (fewer: none)
POSITIVE_SLIP_SHARE = 0.02
POSITIVE_SLIPS_FROM = 20


def positive_slips(observed: int | np.ndarray) -> int | np.ndarray:
    """How many values of 0 or below a positive column of ``observed`` values may hold (``kind_of``)."""
    return np.where(np.asarray(observed) >= POSITIVE_SLIPS_FROM,
                    np.maximum(1, np.floor(POSITIVE_SLIP_SHARE * np.asarray(observed))), 0).astype(int)


def regressor_kinds(frame: pd.DataFrame, columns: tuple[str, ...]) -> dict[str, str]:
    """``kind_of`` each regressor on the training data (recorded with the model)."""
    return {col: kind_of(frame[col].to_numpy(dtype=float)) for col in columns}


def zero_default_columns(kinds: dict[str, str]) -> tuple[str, ...]:
    """Flags and shares: the regressors that are 0 where there is no promotion (and are never standardised)."""
    return tuple(col for col, kind in kinds.items() if kind in (FLAG, SHARE))


def flag_columns(kinds: dict[str, str]) -> tuple[str, ...]:
    """Regressors whose future value is 0 where no plan says otherwise: the 0/1 flags (an event nobody planned
    does not happen)."""
    return tuple(col for col, kind in kinds.items() if kind == FLAG)


QUARTER_DAYS = 91  # a price's window: its highest there is its regular price, the one a customer remembers


def quarter_periods(step_days: int) -> int:
    """The periods of a quarter for periods of ``step_days`` days (91 days, 13 weeks)."""
    return max(1, QUARTER_DAYS // step_days)


REGULAR_PRICE_MULTIPLE = 5.0  # above this times the quarter's median a price is a slip (real ones stay under 1.7)


def nanmedian_rows(a: np.ndarray) -> np.ndarray:
    """Each row's median of its values other than NaN (NaN for a row without any), as ``np.nanmedian(a, axis=1)``
    to the last bit, with one sort. Why not NumPy's: along an axis it takes a masked array for fewer than 600
    values (0.2 ms for one series' quarter of prices, at each cold load of the online endpoint) and a Python loop
    over the rows for more (48 ms for 10,000 series' quarters, against 3.6 ms)."""
    a = np.asarray(a, dtype=float)
    if a.ndim != 2 or a.shape[1] == 0:
        return np.full(len(a), np.nan)
    ordered = np.sort(a, axis=1)  # NaN last
    n = (~np.isnan(a)).sum(axis=1)
    rows = np.arange(len(a))
    return (ordered[rows, (n - 1) // 2] + ordered[rows, n // 2]) / 2  # NaN where n is 0: the last value


def regular_prices(recent: np.ndarray) -> np.ndarray:
    """Per row of prices (K × periods, a series' last quarter; values not above 0 or NaN are no price): the highest
    within ``REGULAR_PRICE_MULTIPLE`` times the row's median, NaN where none. Why not the plain highest: one price
    typed ×100 (cents read as dollars) was the quarter's highest, and every forecast period without a plan took it
    as the regular price for a quarter, moving a cheese forecast by a fifth. Real prices stay within 0.3 to 1.7
    times their usual value: a promotion's is never left out."""
    prices = np.where(np.asarray(recent, dtype=float) > 0, recent, np.nan)
    if not prices.size:
        return np.full(len(prices), np.nan)
    known = np.isfinite(prices).any(axis=1)
    median = np.full(len(prices), np.nan)
    median[known] = nanmedian_rows(prices[known])
    usual = np.where(prices <= REGULAR_PRICE_MULTIPLE * median[:, None], prices, -np.inf)
    highest = usual.max(axis=1)
    return np.where(np.isfinite(highest), highest, np.nan)


def unplanned_values(regs_hist: dict[str, np.ndarray], kinds: dict[str, str], cfg: SeriesConfig) -> dict[str, float]:
    """Each regressor's value in a future period no plan sets, from its history (``regs_hist``, oldest first): a
    share its median over the last season (its usual state: 0 for one that is 0 most periods), a positive one
    (a price) its regular value, the highest above 0 of its last quarter (else its last value above 0), any other
    its last value (a flag's is replaced by 0, ``future_regressors``). A price's regular value leaves slips out
    (``regular_prices``).

    Why not 0 for a share: a display share that is 0 in a third of the weeks, or a month's share of weeks on
    deal, is rarely 0, and a forecast that assumes it is forecast a period unlike the series' usual ones: summed to
    months, orangeJuice's served forecasts were half each series' median month. Why a price's regular value and not
    its last: without a plan a forecast assumes no promotion, and a series on promotion at its origin (its last
    price 38 % off) was forecast the promotion's lift over the whole horizon (a trial on daily data: 1.65 times the
    recent mean of such series, 0.98 for the others). A price cut for good is read as a promotion for a quarter,
    as the models' own discount feature reads it (its depth below the quarter's highest). The last season is
    within what every path reads of a series (batch scoring keeps at least a year of its newest rows)."""
    out = {}
    for col, values in regs_hist.items():
        values = np.asarray(values, dtype=float)
        if kinds.get(col) == SHARE:
            recent = values[-max(1, cfg.season):]
            out[col] = float(np.nanmedian(recent)) if np.isfinite(recent).any() else 0.0
        elif kinds.get(col) == POSITIVE:  # not a slip of 0 read as missing (``kind_of``)
            regular = regular_prices(values[None, -quarter_periods(cfg.step.days):])[0] if len(values) else np.nan
            usable = values[values > 0]
            out[col] = (float(regular) if np.isfinite(regular) else float(usable[-1]) if len(usable)
                        else float(values[-1]) if len(values) else 0.0)
        else:
            out[col] = float(values[-1]) if len(values) else 0.0
    return out


def unequal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Where ``a`` and ``b`` differ, elementwise, NaN equal to NaN (a period without a value is the same as
    another without one)."""
    return ~((a == b) | (np.isnan(a) & np.isnan(b)))


def changed_periods(future: dict[str, np.ndarray], reference: dict[str, np.ndarray], h: int
                    ) -> tuple[np.ndarray, list[str]]:
    """(the first ``h`` periods where any regressor of ``future`` differs from ``reference``, NaN equal to NaN;
    the regressors that do): what a planner's what-if changes of a stored plan."""
    changed = np.zeros(h, dtype=bool)
    columns = []
    for col, values in future.items():
        where = unequal(np.asarray(values[:h], dtype=float), np.asarray(reference[col][:h], dtype=float))
        if where.any():
            changed |= where
            columns.append(col)
    return changed, columns


def future_regressors(
    unplanned: dict[str, float],
    flags: Iterable[str],
    regressors: Iterable[str],
    horizon: int,
    planned: dict[str, np.ndarray] | None = None,
) -> tuple[dict[str, np.ndarray], int]:
    """The regressors of ``horizon`` future periods, as arrays: planned values where given (``planned``: per
    column, ``horizon`` values, NaN where no plan); elsewhere a flag (``flags``) is 0 (no promotion) and any
    other regressor takes its value in ``unplanned`` (``unplanned_values``: a price's regular value, a share's usual
    state).
    Returns the arrays and how many periods used a plan."""
    zero = set(flags)
    used_plan = np.zeros(horizon, dtype=bool)
    out = {}
    for col in regressors:
        values = np.full(horizon, 0.0 if col in zero else float(unplanned.get(col, 0.0)))
        plan = (planned or {}).get(col)
        if plan is not None:
            given = ~np.isnan(plan)
            used_plan |= given
            values[given] = plan[given]
        out[col] = values
    return out, int(used_plan.sum())


def future_frame(
    last_ds: pd.Timestamp,
    unplanned: dict[str, float],
    flags: tuple[str, ...],
    cfg: SeriesConfig,
    horizon: int,
    planned: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, int]:
    """The ``horizon`` periods after ``last_ds`` (+ gap) with regressor values (``future_regressors``), as a
    frame; ``planned`` rows are matched by date. Returns the frame and how many periods used a plan."""
    start = last_ds + cfg.step * (1 + cfg.gap)
    index = pd.date_range(start, periods=horizon, freq=cfg.step, name=DS)
    plan = None
    if planned is not None and not planned.empty:
        plan = {col: planned[col].reindex(index).to_numpy(dtype=float) for col in cfg.regressors
                if col in planned.columns}
    values, used = future_regressors(unplanned, flags, cfg.regressors, horizon, plan)
    return pd.DataFrame(values, index=index), used
