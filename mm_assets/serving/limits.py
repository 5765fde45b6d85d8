"""Which planned regressor values a series' model can take: by the kind its model recorded, and its data's range.

Why: a model learns each regressor in the form its kind gives it (``series.kind_of``, recorded in ``kinds_``): a
flag as 0 or 1, a share as a fraction, a positive (price-like) regressor as its log and its log relative to its
recent level. A value outside that form is not a what-if but a mistake the model would still answer: a promotion
flag of 7 is a promotion seven times over, a price of 0 or -5 has no log, a price of 1e300 leaves the model's data by
hundreds of orders of magnitude, and the sanity envelope then quietly replaces the forecast by the baseline's. So such
a value is a 400 naming the regressor, the series and what is allowed.

A positive regressor is accepted within ``PLAUSIBLE_FACTOR`` of the range of the series' history (below a tenth of
its lowest price or above ten times its highest is a unit or typing error, e.g. cents for dollars, not a price plan).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mm_assets.forecasting.series import FLAG, POSITIVE, SHARE, SIGNED

PLAUSIBLE_FACTOR = 10.0
# a planned share farther than this from every value of the series' history is one its model has no evidence for
SHARE_NEAR = 0.1
TYPED = 1e-9  # relative slack of a bound: a planner who types a printed bound back is within it


def number(value: float) -> str:
    """A bound as answers print it: ten significant digits, so a price of 0.06046875 is printed whole (``:g``
    printed 0.0604688, which a planner typed back and was told was beyond the series' history)."""
    return f"{value:.10g}"


def within(value: float, low: float, high: float) -> bool:
    """Whether ``value`` is within [low, high], up to ``TYPED`` of either bound (as printed by ``number``)."""
    return low - TYPED * abs(low) <= value <= high + TYPED * abs(high)


@dataclass(frozen=True)
class Limit:
    """The values one regressor of one series may take: its kind, and the closed range [low, high]."""

    name: str
    kind: str
    low: float
    high: float
    seen: tuple[float, float] | None = None  # the range of the series history (positive regressors)
    # a share's history values, in runs of values less than ``SHARE_NEAR`` apart: (lowest, highest) of each
    spans: tuple[tuple[float, float], ...] | None = None

    def unseen(self, value: float) -> bool:
        """Whether a planned (allowed) value is one the series' history gives its model no evidence for: a price
        outside its history's range, or a share farther than ``SHARE_NEAR`` from every value its history had
        (orangeJuice's feature shares are near 0 or 1 in nearly every week: a plan of 0.5 is new to the model)."""
        if self.seen is not None:
            return not within(value, *self.seen)
        if self.spans:
            return not any(low - SHARE_NEAR <= value <= high + SHARE_NEAR for low, high in self.spans)
        return False

    def history_words(self) -> str:
        """What the series' history had, as an answer's note prints it: ``price 0.02..0.06``, ``feat 0..0.05,
        0.9..1``."""
        spans = [self.seen] if self.seen is not None else list(self.spans or ())
        return f"{self.name} " + ", ".join(f"{number(low)}..{number(high)}" for low, high in spans)

    def problem(self, value: float) -> str | None:
        """Why ``value`` is not allowed (None: it is). Values reaching here are finite numbers."""
        if self.kind == FLAG and value not in (0.0, 1.0):
            return f"{value:g} is not allowed: {self.name} is a 0/1 flag (0: off, 1: on), so 0 or 1"
        if not within(value, self.low, self.high):
            if self.kind == POSITIVE and value > 0 and self.seen is not None:  # the bound it missed, not "> 0"
                return f"{value:g} is out of range: {self._plausible()}"
            return f"{value:g} is out of range: {self.describe()}"
        return None

    def _plausible(self) -> str:
        return (f"{self.name}'s history ranges {number(self.seen[0])}..{number(self.seen[1])}, so a plan is accepted "
                f"within {number(self.low)}..{number(self.high)} ({PLAUSIBLE_FACTOR:g}x either way)")

    def describe(self) -> str:
        if self.kind == SHARE:
            return f"{self.name} is a share, so within 0..1"
        if self.kind == POSITIVE:
            text = f"{self.name} is positive (price-like), so > 0"
            return text if self.seen is None else f"{text}; {self._plausible()}"
        return f"{self.name} must be a finite number"


def limit_of(name: str, kind: str, history: np.ndarray) -> Limit:
    """The limit of regressor ``name`` of kind ``kind`` (``series.kind_of``), ``history`` its values the model saw."""
    if kind == SHARE:
        values = np.unique(history[np.isfinite(history)])
        if not values.size:
            return Limit(name, kind, 0.0, 1.0)
        breaks = np.flatnonzero(np.diff(values) >= SHARE_NEAR)
        lows, highs = values[np.r_[0, breaks + 1]], values[np.r_[breaks, values.size - 1]]
        return Limit(name, kind, 0.0, 1.0, spans=tuple(zip(lows.tolist(), highs.tolist())))
    if kind == FLAG:
        return Limit(name, kind, 0.0, 1.0)
    if kind == POSITIVE:
        seen = history[np.isfinite(history) & (history > 0)]
        if not seen.size:
            return Limit(name, kind, math.ulp(0.0), math.inf)
        lo, hi = float(seen.min()), float(seen.max())
        return Limit(name, kind, lo / PLAUSIBLE_FACTOR, hi * PLAUSIBLE_FACTOR, (lo, hi))
    return Limit(name, SIGNED, -math.inf, math.inf)


def limits_of(model, history, regressors) -> dict[str, Limit]:
    """Every regressor's limit for one series: the kinds its model recorded (``kinds_``; a model without them is
    held to finite values) and the values of ``history`` (the frame its forecasts start from)."""
    kinds = getattr(model, "kinds_", None) or {}
    return {col: limit_of(col, kinds.get(col, SIGNED), history[col].to_numpy(dtype=float)) for col in regressors}
