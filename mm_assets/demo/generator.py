"""Deterministic, realistic retail daily-sales generator: the demo's *source database*.

Why it exists: the pipeline ingests from an external SQL source it does not own. To demo, test and load-test the
pipeline without a customer database we need a source that looks like real retail data, with every awkward
property a real one has (seasonality, prices and promotions that move demand, holidays, slow movers, late
launches and discontinued items, closed days with *absent* rows, count noise and outliers), so that feature
engineering and models are exercised on the hard cases and not only on clean sine waves.

Design choices, and why:

* **Deterministic by seed.** Demo data must be identical on every machine and in CI, so every random draw comes
  from ``numpy.random.default_rng`` seeded from ``spec.seed``. Item-level parameters (the shared catalogue) use
  their own stream; each store uses ``default_rng([seed, store_index])``. Output for a store therefore does not
  depend on how stores are chunked, nor on how many other stores are generated.
* **History does not depend on ``future_days``.** Planned future rows (price/promo known in advance, sales NULL)
  are drawn from separate streams, so switching the future on only *appends* rows.
* **Vectorised, chunked.** The same code must produce 10,000 series x 4,000 days = 40M rows in tens of seconds
  within a few GiB, so each store is one ``items x days`` matrix computation (no per-row Python) and
  :func:`iter_sales` yields one DataFrame per chunk of stores so memory stays bounded by the chunk size.
* **No Dagster import.** It is used by scripts, tests and the Dagster assets alike.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "COLUMNS",
    "DemoSpec",
    "easter_sunday",
    "generate_sales",
    "holiday_calendar",
    "item_catalogue",
    "iter_sales",
    "write_source",
]

COLUMNS = ["date", "store", "item", "sales", "price", "promo"]

# ----------------------------------------------------------------------------------------------------------------
# Model constants. Module level (not DemoSpec fields) so the spec stays the small public contract, while tests can
# still switch one effect off (monkeypatch) to prove it is what produces the measured signal.
# ----------------------------------------------------------------------------------------------------------------
_DAYS_PER_YEAR = 365.25
# Mon..Sun demand profile: Friday/Saturday/Sunday peak, quiet early week (typical grocery / general retail).
_BASE_DOW = np.array([0.86, 0.82, 0.88, 0.95, 1.12, 1.38, 1.20])
_DOW_ITEM_SD = 0.08  # per-item wobble of the weekly profile (log scale)
_SLOW_FRACTION = 0.15
_LATE_FRACTION = 0.10
_DISCONTINUED_FRACTION = 0.05
_PRICE_CHANGES_PER_YEAR = 1.2
_PROMO_RUN = (3, 11)  # run length in days, [low, high)
_PROMO_COVERAGE = (0.04, 0.11)  # per-series share of days on promotion, before overlaps
_SPIKE_PROB = 0.001
_SPIKE_FACTOR = 5.0
_CLOSURES_PER_YEAR = 2.0  # random extra store-closure days (besides Christmas Day)
_ROLLOUT_DAYS = 8  # a launch / delisting reaches the stores over up to this many days
_CATALOGUE_KEY = 1 << 62  # stream id of the item catalogue; never collides with a store index
_FUTURE_KEY = 1  # sub-stream id of planned future rows


@dataclass(frozen=True)
class DemoSpec:
    """Size and seed of the demo data set.

    ``items`` is the size of the item catalogue, shared by all stores (every store lists every item), so the
    number of series is ``stores * items``. ``end_date`` is fixed so the demo is identical everywhere and the
    pipeline's default ingest start date (``end_date - days + 1`` = 2023-11-24 for the defaults) matches it.
    ``future_days`` > 0 adds planned price/promo rows after ``end_date`` with ``sales`` NaN (NULL in SQL) for
    every series that is still listed, for models that use future regressors. Future rows cover every day, even
    Christmas Day (a forecaster needs regressors for each date of its horizon), and never random closures, which
    nobody plans in advance.
    """

    stores: int = 10
    items: int = 20
    days: int = 1095
    end_date: datetime.date = datetime.date(2026, 11, 22)
    seed: int = 42
    future_days: int = 0

    def __post_init__(self) -> None:
        for name in ("stores", "items", "days"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"DemoSpec.{name} must be >= 1, got {getattr(self, name)!r}")
        if int(self.future_days) < 0:
            raise ValueError(f"DemoSpec.future_days must be >= 0, got {self.future_days!r}")
        if isinstance(self.end_date, datetime.datetime) or not isinstance(self.end_date, datetime.date):
            raise ValueError(f"DemoSpec.end_date must be a datetime.date, got {self.end_date!r}")

    @property
    def start_date(self) -> datetime.date:
        """First day of history."""
        return self.end_date - datetime.timedelta(days=self.days - 1)

    @property
    def series(self) -> int:
        return self.stores * self.items

    @property
    def store_ids(self) -> list[str]:
        width = max(2, len(str(self.stores)))
        return [f"S{i + 1:0{width}d}" for i in range(self.stores)]

    @property
    def item_ids(self) -> list[str]:
        width = max(3, len(str(self.items)))
        return [f"I{i + 1:0{width}d}" for i in range(self.items)]


# ----------------------------------------------------------------------------------------------------------------
# Holidays
# ----------------------------------------------------------------------------------------------------------------
def easter_sunday(year: int) -> datetime.date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm); Easter moves by weeks, which models must cope with."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month, day = divmod(h + l_ - 7 * m + 114, 31)
    return datetime.date(year, month, day + 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> datetime.date:
    """n-th (1-based) ``weekday`` (Mon=0) of a month; n=-1 is the last one."""
    if n > 0:
        first = datetime.date(year, month, 1)
        return first + datetime.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = datetime.date(year + (month == 12), month % 12 + 1, 1) - datetime.timedelta(days=1)
    return last - datetime.timedelta(days=(last.weekday() - weekday) % 7)


def _holidays_of_year(year: int) -> list[tuple[datetime.date, str, float, bool]]:
    """(date, name, demand multiplier, store closed) for one year. A mix of uplift, dip and closure days."""
    easter = easter_sunday(year)
    thanksgiving = _nth_weekday(year, 11, 3, 4)
    d = datetime.date
    td = datetime.timedelta
    return [
        (d(year, 1, 1), "New Year's Day", 0.55, False),
        (easter - td(days=2), "Good Friday", 1.15, False),
        (easter - td(days=1), "Holy Saturday", 1.35, False),
        (easter, "Easter Sunday", 0.60, False),
        (easter + td(days=1), "Easter Monday", 1.10, False),
        (_nth_weekday(year, 5, 0, -1), "Memorial Day", 1.20, False),
        (d(year, 7, 4), "Independence Day", 1.25, False),
        (_nth_weekday(year, 9, 0, 1), "Labor Day", 1.15, False),
        (thanksgiving, "Thanksgiving", 0.50, False),
        (thanksgiving + td(days=1), "Black Friday", 2.00, False),
        (d(year, 12, 23), "Christmas shopping", 1.35, False),
        (d(year, 12, 24), "Christmas Eve", 1.60, False),
        (d(year, 12, 25), "Christmas Day", 0.0, True),
        (d(year, 12, 26), "Boxing Day", 1.30, False),
        (d(year, 12, 31), "New Year's Eve", 1.25, False),
    ]


def holiday_calendar(start: datetime.date, end: datetime.date) -> pd.DataFrame:
    """Holidays between ``start`` and ``end`` inclusive: columns date, holiday, multiplier, closed.

    Public so that the pipeline (or a notebook) can build holiday regressors that match the demo's truth.
    ``closed`` days (Christmas Day) have no rows in the source at all; ``multiplier`` is the demand factor for an
    average item (each item scales it by its own holiday sensitivity).
    """
    rows = [
        row
        for year in range(start.year, end.year + 1)
        for row in _holidays_of_year(year)
        if start <= row[0] <= end
    ]
    frame = pd.DataFrame(rows, columns=["date", "holiday", "multiplier", "closed"])
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    return frame.sort_values("date", kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------------------------------------------
# Item catalogue (shared by all stores)
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Catalogue:
    base_rate: np.ndarray  # (n,) units/day in an average store at end_date, before effects
    slow: np.ndarray  # (n,) bool
    dispersion: np.ndarray  # (n,) negative-binomial size k (smaller = noisier, more zeros)
    base_price: np.ndarray  # (n,) launch price = reference price of the elasticity
    elasticity: np.ndarray  # (n,)
    trend: np.ndarray  # (n,) log growth per year
    summer_amp: np.ndarray
    xmas_amp: np.ndarray
    holiday_sens: np.ndarray
    dow: np.ndarray  # (n, 7) Mon..Sun multipliers, mean 1
    launch: np.ndarray  # (n,) first day index (0 = on sale since the start)
    end: np.ndarray  # (n,) last day index with sales; _ACTIVE if still listed
    regular_price: np.ndarray  # (n, days) regular shelf price (chain-wide)
    future_price: np.ndarray  # (n, future_days) planned regular price
    season_log: np.ndarray  # (n, days) log of weekly x yearly x holiday effects


_ACTIVE = np.iinfo(np.int32).max


def _role_counts(n: int) -> tuple[int, int, int]:
    """How many slow / late-launched / discontinued items; at least one of each once the catalogue is big enough."""
    slow = max(int(round(_SLOW_FRACTION * n)), 1 if n >= 4 else 0)
    late = max(int(round(_LATE_FRACTION * n)), 1 if n >= 5 else 0)
    disc = max(int(round(_DISCONTINUED_FRACTION * n)), 1 if n >= 10 else 0)
    return slow, late, disc


def _price_path(rng: np.random.Generator, n: int, length: int, start_log: np.ndarray, first: int) -> np.ndarray:
    """Log regular price per item: piecewise constant with occasional step changes (repricing, inflation)."""
    counts = rng.poisson(_PRICE_CHANGES_PER_YEAR * length / _DAYS_PER_YEAR, n)
    total = int(counts.sum())
    positions = rng.integers(first, max(length, first + 1), total)
    steps = rng.normal(0.03, 0.10, total)
    owner = np.repeat(np.arange(n), counts)
    delta = np.bincount(owner * length + positions, weights=steps, minlength=n * length).reshape(n, length)
    return start_log[:, None] + np.cumsum(delta, axis=1)


def _calendar(spec: DemoSpec) -> dict[str, np.ndarray]:
    """Day-indexed calendar arrays over history + future."""
    total = spec.days + spec.future_days
    start = np.datetime64(spec.start_date, "D")
    days = start + np.arange(total)
    index = pd.DatetimeIndex(days.astype("datetime64[ns]"))
    doy = index.day_of_year.to_numpy()
    is_leap = index.is_leap_year
    dec22 = np.where(is_leap, 357, 356)
    xmas_dist = doy - dec22
    xmas_dist = np.where(xmas_dist < -183, xmas_dist + (365 + is_leap), xmas_dist)
    log_hol = np.zeros(total)
    closed = np.zeros(total, dtype=bool)
    end = spec.end_date + datetime.timedelta(days=spec.future_days)
    for year in range(spec.start_date.year, end.year + 1):
        for date, _, mult, is_closed in _holidays_of_year(year):
            i = (date - spec.start_date).days
            if 0 <= i < total:
                closed[i] |= is_closed
                if mult > 0:
                    log_hol[i] += math.log(mult)
    return {
        "dates": days.astype("datetime64[ns]"),
        "dow": index.day_of_week.to_numpy(),
        "doy": doy,
        "xmas_dist": xmas_dist,
        "log_hol": log_hol,
        "closed": closed,
    }


def _build_catalogue(spec: DemoSpec, cal: dict[str, np.ndarray]) -> _Catalogue:
    """Item parameters from the catalogue stream. Draw sizes depend only on (items, days), never on stores."""
    n, h = spec.items, spec.days
    rng = np.random.default_rng([spec.seed, _CATALOGUE_KEY])
    perm = rng.permutation(n)
    n_slow, n_late, n_disc = _role_counts(n)
    slow_idx = perm[:n_slow]
    late_idx = perm[n_slow : n_slow + n_late]
    disc_idx = perm[n_slow + n_late : n_slow + n_late + n_disc]

    # Popular and niche items: log-normal rates span roughly 3..300 units/day/store, and noise that ranges from
    # erratic to steady, so the demo has series that pass the promotion gate's accuracy rule and many that do not.
    regular_rate = np.clip(np.exp(rng.normal(math.log(20.0), 1.0, n)), 1.0, 400.0)
    slow_rate = rng.uniform(0.04, 0.5, n)
    regular_k = rng.uniform(4.0, 60.0, n)
    slow_k = rng.uniform(0.4, 1.5, n)
    slow = np.zeros(n, dtype=bool)
    slow[slow_idx] = True
    base_rate = np.where(slow, slow_rate, regular_rate)
    dispersion = np.where(slow, slow_k, regular_k)

    base_price = np.maximum(np.round(np.exp(rng.normal(math.log(4.5), 0.8, n)), 2), 0.49)
    elasticity = np.clip(rng.normal(-1.5, 0.5, n), -3.0, -0.3)
    trend = np.clip(rng.normal(0.02, 0.05, n), -0.12, 0.15)
    summer_amp = rng.uniform(-0.15, 0.35, n)
    xmas_amp = rng.uniform(0.05, 0.60, n)
    holiday_sens = rng.uniform(0.6, 1.4, n)
    dow = _BASE_DOW[None, :] * np.exp(rng.normal(0.0, _DOW_ITEM_SD, (n, 7)))
    dow /= dow.mean(axis=1, keepdims=True)

    # Late launches: half of them (rounded up) have fewer than 60 days of history, the rest somewhere in between.
    short_hist = rng.integers(21, 54, n)
    long_frac = rng.uniform(0.10, 0.75, n)
    disc_frac = rng.uniform(0.05, 0.30, n)
    launch = np.zeros(n, dtype=np.int64)
    n_short = (n_late + 1) // 2
    launch[late_idx[:n_short]] = h - short_hist[late_idx[:n_short]]
    launch[late_idx[n_short:]] = (long_frac[late_idx[n_short:]] * h).astype(np.int64)
    launch = np.clip(launch, 0, h - 1)
    end = np.full(n, _ACTIVE, dtype=np.int64)
    end[disc_idx] = h - 1 - 30 - (disc_frac[disc_idx] * h).astype(np.int64)
    end = np.where(end == _ACTIVE, end, np.maximum(end, np.minimum(launch + 14, h - 2)))

    log_price = _price_path(rng, n, h, np.log(base_price), first=1)
    regular_price = np.maximum(np.round(np.exp(log_price), 2), 0.10)

    future_price = np.empty((n, 0))
    if spec.future_days:
        frng = np.random.default_rng([spec.seed, _CATALOGUE_KEY, _FUTURE_KEY])
        future_log = _price_path(frng, n, spec.future_days, log_price[:, -1], first=0)
        future_price = np.maximum(np.round(np.exp(future_log), 2), 0.10)

    # Seasonal shape over history: weekly (item-specific profile) x yearly (summer wave + smooth pre-Christmas
    # peak) x holidays (scaled by the item's sensitivity).
    dow_idx = cal["dow"][:h]
    phase = 2.0 * np.pi * (cal["doy"][:h] - 196) / _DAYS_PER_YEAR  # day 196 ~ mid July
    xmas_bump = np.exp(-0.5 * (cal["xmas_dist"][:h] / 12.0) ** 2)
    season_log = (
        np.log(dow)[:, dow_idx]
        + np.log1p(summer_amp[:, None] * np.cos(phase)[None, :])
        + np.log1p(xmas_amp[:, None] * xmas_bump[None, :])
        + holiday_sens[:, None] * cal["log_hol"][None, :h]
    )
    return _Catalogue(
        base_rate=base_rate,
        slow=slow,
        dispersion=dispersion,
        base_price=base_price,
        elasticity=elasticity,
        trend=trend,
        summer_amp=summer_amp,
        xmas_amp=xmas_amp,
        holiday_sens=holiday_sens,
        dow=dow,
        launch=launch,
        end=end,
        regular_price=regular_price,
        future_price=future_price,
        season_log=season_log,
    )


def item_catalogue(spec: DemoSpec = DemoSpec()) -> pd.DataFrame:
    """The true item parameters behind the demo data, one row per item.

    Why public: lets tests and demos check what a model recovers (e.g. elasticity, trend) against the truth.
    ``launch_date`` is the chain launch (stores follow within a week); ``end_date`` is NaT for listed items.
    """
    cal = _calendar(spec)
    cat = _build_catalogue(spec, cal)
    start = np.datetime64(spec.start_date, "D")
    role = np.where(cat.slow, "slow", "regular").astype(object)
    role[cat.launch > 0] = "late"
    role[cat.end != _ACTIVE] = "discontinued"
    end_dates = np.where(cat.end == _ACTIVE, np.datetime64("NaT", "D"), start + np.minimum(cat.end, spec.days))
    frame = pd.DataFrame(
        {
            "item": spec.item_ids,
            "role": role,
            "slow_mover": cat.slow,
            "base_rate": cat.base_rate,
            "dispersion": cat.dispersion,
            "base_price": cat.base_price,
            "elasticity": cat.elasticity,
            "trend_per_year": cat.trend,
            "summer_amp": cat.summer_amp,
            "xmas_amp": cat.xmas_amp,
            "holiday_sensitivity": cat.holiday_sens,
            "launch_date": (start + cat.launch).astype("datetime64[ns]"),
            "end_date": end_dates.astype("datetime64[ns]"),
            "price_changes": (np.diff(cat.regular_price, axis=1) != 0).sum(axis=1),
        }
    )
    for j, name in enumerate(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]):
        frame[f"dow_{name}"] = cat.dow[:, j]
    return frame


# ----------------------------------------------------------------------------------------------------------------
# Per-store generation
# ----------------------------------------------------------------------------------------------------------------
def _promo_runs(
    rng: np.random.Generator, coverage: np.ndarray, length: int, lead_in: int
) -> np.ndarray:
    """(n, length) bool: promotion runs of several days, ~coverage share of days per series.

    Starts may lie up to ``lead_in`` days before the window so runs are cut at the window edge like in real data.
    """
    n = coverage.shape[0]
    low, high = _PROMO_RUN
    mean_len = (low + high - 1) / 2.0
    counts = rng.poisson(coverage * (length + lead_in) / mean_len)
    total = int(counts.sum())
    owner = np.repeat(np.arange(n), counts)
    starts = rng.integers(-lead_in, length, total)
    stops = np.minimum(starts + rng.integers(low, high, total), length)
    starts = np.maximum(starts, 0)
    keep = stops > starts
    width = length + 1
    diff = np.bincount(owner[keep] * width + starts[keep], minlength=n * width) - np.bincount(
        owner[keep] * width + stops[keep], minlength=n * width
    )
    return np.cumsum(diff.reshape(n, width), axis=1)[:, :length] > 0


def _store_rows(spec: DemoSpec, cal: dict[str, np.ndarray], cat: _Catalogue, s: int) -> tuple[np.ndarray, ...]:
    """Rows of store ``s`` (0-based) in (item, date) order: item index, day index, sales, price, promo.

    All randomness comes from ``default_rng([seed, s])`` (history) and ``[seed, s, 1]`` (planned future), so the
    result depends only on the spec and the store index.
    """
    n, h, f = spec.items, spec.days, spec.future_days
    rng = np.random.default_rng([spec.seed, s])

    store_level = math.exp(rng.normal(0.0, 0.6))  # big flagship stores and small neighbourhood ones
    affinity = np.exp(rng.normal(0.0, 0.3, n))  # local taste: item x store interaction
    slope = cat.trend + rng.normal(0.0, 0.03, n)
    launch = np.minimum(cat.launch + np.where(cat.launch > 0, rng.integers(0, _ROLLOUT_DAYS, n), 0), h - 1)
    end = np.where(cat.end == _ACTIVE, _ACTIVE, np.maximum(cat.end - rng.integers(0, _ROLLOUT_DAYS, n), launch))
    closures = rng.integers(0, h, rng.poisson(_CLOSURES_PER_YEAR * h / _DAYS_PER_YEAR))
    coverage = rng.uniform(*_PROMO_COVERAGE, n)
    discount = rng.uniform(0.10, 0.35, n)
    uplift = np.exp(rng.normal(0.30, 0.10, n))  # display / advertising effect on top of the price cut
    promo = _promo_runs(rng, coverage, h, lead_in=10)

    regular = cat.regular_price
    promo_price = np.maximum(np.round(regular * (1.0 - discount)[:, None], 2), 0.05)
    price = np.where(promo, promo_price, regular)

    t = np.arange(h)
    log_mu = (
        np.log(cat.base_rate * store_level * affinity)[:, None]
        + cat.season_log
        + slope[:, None] * ((t - (h - 1)) / _DAYS_PER_YEAR)[None, :]
        + cat.elasticity[:, None] * np.log(price / cat.base_price[:, None])
        + np.log(uplift)[:, None] * promo
    )
    age = t[None, :] - launch[:, None]
    ramp = np.where((cat.launch[:, None] > 0) & (age >= 0), 1.0 - 0.7 * np.exp(-np.maximum(age, 0) / 14.0), 1.0)
    mu = np.exp(log_mu) * ramp
    spikes = rng.integers(0, n * h, rng.binomial(n * h, _SPIKE_PROB))
    k = cat.dispersion[:, None]
    counts = rng.poisson(rng.gamma(np.broadcast_to(k, mu.shape), mu / k))  # negative binomial = gamma-Poisson
    # Outliers (bulk orders, data-entry errors): ~5x the expected level, at least ~10 units even for slow movers,
    # drawn without the gamma noise so a spike is reliably far above its neighbours.
    flat_counts = counts.reshape(-1)
    flat_counts[spikes] = rng.poisson(_SPIKE_FACTOR * np.maximum(mu.reshape(-1)[spikes], 2.0))

    open_day = ~cal["closed"][:h].copy()
    open_day[closures] = False
    valid = (t[None, :] >= launch[:, None]) & (t[None, :] <= end[:, None]) & open_day[None, :]

    if f:
        frng = np.random.default_rng([spec.seed, s, _FUTURE_KEY])
        fpromo = _promo_runs(frng, coverage, f, lead_in=0)
        fpromo_price = np.maximum(np.round(cat.future_price * (1.0 - discount)[:, None], 2), 0.05)
        fprice = np.where(fpromo, fpromo_price, cat.future_price)
        listed = np.broadcast_to((end == _ACTIVE)[:, None], (n, f))
        valid = np.concatenate([valid, listed], axis=1)
        price = np.concatenate([price, fprice], axis=1)
        promo = np.concatenate([promo, fpromo], axis=1)
        sales = np.concatenate([counts.astype(np.float64), np.full((n, f), np.nan)], axis=1)
    else:
        sales = counts.astype(np.float64)

    flat = np.flatnonzero(valid.reshape(-1))
    width = h + f
    return (
        (flat // width).astype(np.int32),
        (flat % width).astype(np.int32),
        sales.reshape(-1)[flat],
        price.reshape(-1)[flat],
        promo.reshape(-1)[flat].astype(np.int64),
    )


def _default_string_dtype():
    return pd.Series(["x"]).dtype


def _label_column(labels: list[str], codes: np.ndarray) -> pd.Series:
    """String column ``labels[codes]`` built without creating one Python object per row.

    Why: at 40M rows, materialising Python strings costs many seconds and GiB. All labels share one width, so
    with pandas' Arrow-backed ``str`` dtype the buffers can be assembled directly with numpy (zero copy).
    """
    dtype = _default_string_dtype()
    width = len(labels[0])
    if getattr(dtype, "storage", None) == "pyarrow" and all(len(x) == width for x in labels) and labels[0].isascii():
        import pyarrow as pa

        fixed = np.array(labels, dtype=f"S{width}")[codes]
        offsets = np.arange(len(codes) + 1, dtype=np.int64) * width
        arr = pa.LargeStringArray.from_buffers(
            len(codes), pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(fixed).view(np.uint8))
        )
        return pd.Series(arr, dtype=dtype)
    return pd.Series(np.array(labels, dtype=object)[codes], dtype=dtype)


def iter_sales(spec: DemoSpec = DemoSpec(), chunk_stores: int = 50) -> Iterator[pd.DataFrame]:
    """Yield the sales table one chunk of ``chunk_stores`` stores at a time, rows sorted by store, item, date.

    Columns: date (datetime64[ns]), store, item (str), sales (float64 counts, NaN only on future rows),
    price (float64 > 0), promo (int64 0/1). Peak memory is proportional to ``chunk_stores * items * days``;
    the concatenation of all chunks does not depend on ``chunk_stores``.
    """
    if chunk_stores < 1:
        raise ValueError(f"chunk_stores must be >= 1, got {chunk_stores}")
    cal = _calendar(spec)
    cat = _build_catalogue(spec, cal)
    store_ids, item_ids = spec.store_ids, spec.item_ids
    for first in range(0, spec.stores, chunk_stores):
        stores = range(first, min(first + chunk_stores, spec.stores))
        parts = [_store_rows(spec, cal, cat, s) for s in stores]
        sizes = np.array([len(p[0]) for p in parts])
        store_codes = np.repeat(np.arange(first, first + len(parts)), sizes)
        item_codes, day, sales, price, promo = (np.concatenate([p[j] for p in parts]) for j in range(5))
        del parts
        yield pd.DataFrame(  # copy=False: no 1+ s consolidation of the float columns at 20M rows
            {
                "date": cal["dates"][day],
                "store": _label_column(store_ids, store_codes),
                "item": _label_column(item_ids, item_codes),
                "sales": sales,
                "price": price,
                "promo": promo,
            },
            copy=False,
        )


def generate_sales(spec: DemoSpec = DemoSpec()) -> pd.DataFrame:
    """The whole table in memory (sorted by store, item, date). Use :func:`iter_sales` for big specs."""
    # Moderate chunks (~4M rows) generate faster than one huge chunk (less page-fault churn); output is identical.
    chunk_stores = max(1, 4_000_000 // (spec.items * (spec.days + spec.future_days)))
    frames = list(iter_sales(spec, chunk_stores=chunk_stores))
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return frame.reset_index(drop=True)


# ----------------------------------------------------------------------------------------------------------------
# Writing the source database
# ----------------------------------------------------------------------------------------------------------------
_ROWS_PER_TRANSACTION = 250_000
# SQLite only: positional DB-API executemany with ISO date strings, ~2.5x faster than Core executemany of dicts
# (whose per-value date processing dominates). False forces the portable Core path (used by the tests).
_SQLITE_FAST_PATH = True


def _sales_table(metadata, table: str):
    import sqlalchemy as sa

    return sa.Table(
        table,
        metadata,
        sa.Column("date", sa.Date, nullable=False),
        sa.Column("store", sa.String, nullable=False),
        sa.Column("item", sa.String, nullable=False),
        sa.Column("sales", sa.Float, nullable=True),
        sa.Column("price", sa.Float, nullable=True),
        sa.Column("promo", sa.Integer, nullable=True),
    )


def _ensure_sqlite_dir(url) -> None:
    """SQLite creates the file but not its directory; the default ``data/source.db`` must work on a fresh clone."""
    if url.get_backend_name() != "sqlite":
        return
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _repeated_objects(values, convert) -> list:
    """``[convert(v) for v in values]`` for a column with few distinct values, one Python object per distinct value.

    Why: dates, stores and items repeat hundreds of times per chunk; converting only the distinct values and
    fanning them out with a numpy take is several times faster than building one object per row.
    """
    codes, uniques = pd.factorize(values, sort=False)
    table = np.empty(len(uniques), dtype=object)
    table[:] = convert(uniques)
    return table[codes].tolist()


def _chunk_parameters(chunk: pd.DataFrame, sqlite: bool) -> list:
    """Executemany parameters of one chunk, built column-wise (fast) rather than row by row.

    SQLite gets positional tuples with ISO date strings - exactly what SQLAlchemy's ``Date`` type stores there, so
    reading back through SQLAlchemy returns ``datetime.date`` - because SQLAlchemy's per-value date bind processing
    would otherwise dominate the load time. Other databases get dicts of ``datetime.date`` through Core.
    """
    days = chunk["date"].to_numpy().astype("datetime64[D]")
    if sqlite:
        dates = _repeated_objects(days, lambda u: np.datetime_as_string(np.asarray(u), unit="D").tolist())
    else:
        dates = _repeated_objects(days, lambda u: np.asarray(u).astype(object).tolist())
    sales = chunk["sales"].to_numpy()
    if np.isnan(sales).any():
        sales_list = np.where(np.isnan(sales), None, sales.astype(object)).tolist()
    else:
        sales_list = sales.tolist()
    columns = (
        dates,
        _repeated_objects(chunk["store"], lambda u: [str(x) for x in u]),
        _repeated_objects(chunk["item"], lambda u: [str(x) for x in u]),
        sales_list,
        chunk["price"].to_numpy().tolist(),
        chunk["promo"].to_numpy().tolist(),
    )
    rows = list(zip(*columns))
    if sqlite:
        return rows
    return [dict(zip(COLUMNS, row)) for row in rows]


def write_source(
    spec: DemoSpec = DemoSpec(),
    url: str = "sqlite:///data/source.db",
    table: str = "sales",
    progress: bool = False,
) -> int:
    """(Re)create the demo source table at ``url`` and fill it; returns the number of rows written.

    The table is dropped and recreated (date DATE, store VARCHAR, item VARCHAR, sales FLOAT, price FLOAT,
    promo INTEGER), filled one chunk of stores per transaction (one commit per chunk keeps SQLite fast and memory
    bounded), and only then indexed on (date) - the ingest's partition filter - and on (store, item), because
    building an index once is much cheaper than maintaining it during the load.
    """
    import sqlalchemy as sa

    sa_url = sa.engine.make_url(url)
    _ensure_sqlite_dir(sa_url)
    engine = sa.create_engine(sa_url)
    sqlite = _SQLITE_FAST_PATH and engine.dialect.name == "sqlite"
    metadata = sa.MetaData()
    sales_table = _sales_table(metadata, table)
    rows_per_store = spec.items * (spec.days + spec.future_days)
    chunk_stores = max(1, _ROWS_PER_TRANSACTION // max(rows_per_store, 1))
    chunks = iter_sales(spec, chunk_stores=chunk_stores)
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, total=math.ceil(spec.stores / chunk_stores), unit="chunk", desc=f"writing {table}")
    written = 0
    try:
        with engine.begin() as conn:
            sales_table.drop(conn, checkfirst=True)
            sales_table.create(conn)
        if sqlite:
            preparer = engine.dialect.identifier_preparer
            insert_sql = (
                f"INSERT INTO {preparer.format_table(sales_table)} "
                f"({', '.join(preparer.quote(c) for c in COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
            )
        for chunk in chunks:
            params = _chunk_parameters(chunk, sqlite)
            with engine.begin() as conn:
                if sqlite:
                    conn.exec_driver_sql(insert_sql, params)
                else:
                    conn.execute(sales_table.insert(), params)
            written += len(params)
            del params, chunk
        with engine.begin() as conn:
            sa.Index(f"ix_{table}_date", sales_table.c.date).create(conn)
            sa.Index(f"ix_{table}_store_item", sales_table.c.store, sales_table.c.item).create(conn)
    finally:
        engine.dispose()
    return written
