"""The promotion gate's rules (pure functions, no I/O, no Dagster).

A challenger (the latest trained model of a series) becomes champion only if
  (a) it beats the series' baseline on the same holdout: its MAE < the baseline's MAE (``rel_mae_baseline`` < 1;
      RMSE for an intermittent series, as its baseline is chosen), that ratio weighed with the latest models of its
      model type in every store when the holdout is short (``weigh_rel_baseline``), but never a tie on its own
      holdout (the same error as the baseline's, which a series without sales has: other series are no evidence
      for it);
  (b) optional absolute floors, off by default: holdout accuracy (1 - WAPE) >= ``min_accuracy`` (e.g. 0.80)
      and MASE < ``max_mase``;
  (c) its holdout WAPE <= the current champion's WAPE on the same holdout + ``champion_tolerance``.
A baseline model (the fallback) is never promoted: the baseline serves a series without champion anyway.
Every decision carries its reason.

Why the baseline and not an absolute floor decides by default: what planners get without a champion is the
baseline, so any model that beats it on the same periods is an improvement for them; an absolute floor such as
80 % accuracy rejects most item-level retail series (their noise alone costs more than 20 %) and leaves them
on the baseline, which is worse.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from mm_assets.forecasting.envelope import WINDOW_WORDS
from mm_assets.forecasting.models import BASELINE_TYPES

PROMOTED = "promoted"
KEPT_CHAMPION = "kept_champion"
REJECTED = "rejected"
# said in a decision's reason when the series' champion cannot forecast with the settings (trained for a shorter
# horizon, another target or a dropped regressor): it serves nothing, and the promotion report does not count it
CANNOT_SERVE = "the champion cannot forecast with these settings"


@dataclass(frozen=True)
class GateRule:
    min_accuracy: float | None = None
    max_mase: float | None = None
    champion_tolerance: float = 0.0
    retire_margin: float = 0.05

    @classmethod
    def from_settings(cls, settings) -> GateRule:
        p = settings.promotion
        return cls(p.min_accuracy, p.max_mase, p.champion_tolerance, p.retire_margin)

    def retires(self, rel_baseline) -> bool:
        """Whether a challenger of the champion's recipe that does not beat the baseline, at this error ratio to
        the baseline's, retires the champion: only beyond ``retire_margin``. A series whose model and baseline are
        about even would otherwise be served by one, then the other, day after day (a trial: 6 switches in 26
        days, its published 28-day total moving by a third each time)."""
        return not _missing(rel_baseline) and float(rel_baseline) > 1.0 + self.retire_margin

    def describe(self) -> str:
        parts = ["beats the series' baseline on the holdout"]
        if self.min_accuracy is not None:
            parts.append(f"accuracy >= {self.min_accuracy:g}")
        if self.max_mase is not None:
            parts.append(f"MASE < {self.max_mase:g}")
        parts.append(f"WAPE <= champion's + {self.champion_tolerance:g}")
        return ", ".join(parts)


REL_CLIP = 1e-3  # ratios are compared in logs: a perfect holdout (ratio 0) counts as 1/1000, not as -infinity


def trimmed_mean(values: np.ndarray) -> float:
    """The mean without the highest and lowest tenth of ``values``, at least one of each from 3 values on (3 or 4
    values: their median)."""
    ordered = np.sort(values)
    cut = max(1, len(ordered) // 10) if len(ordered) >= 3 else 0
    return float(ordered[cut:len(ordered) - cut].mean())


def log_ratio(rel) -> np.ndarray:
    """Error ratios as the gate compares them: in logs, clipped to [``REL_CLIP``, 1 / ``REL_CLIP``]."""
    return np.log(np.clip(np.asarray(rel, dtype=float), REL_CLIP, 1 / REL_CLIP))


def pooled_log_ratios(rel, model_types, eligible) -> dict[str, tuple[float, int]]:
    """Per model type: the mean log ratio of its eligible series without their highest and lowest tenth
    (``trimmed_mean``), and how many series it pools."""
    log_rel = log_ratio(rel)
    types = np.asarray(model_types, dtype=object)
    usable = np.asarray(eligible, dtype=bool) & np.isfinite(log_rel)
    return {t: (trimmed_mean(log_rel[usable & (types == t)]), int((usable & (types == t)).sum()))
            for t in sorted(set(types[usable]))}


def weigh_rel_baseline(rel, points, model_types, eligible, prior_points: float,
                       pooled: dict[str, tuple[float, int]] | None = None) -> np.ndarray:
    """Each series' MAE ratio to its baseline (``rel_mae_baseline``), weighed with the other series of its model
    type: exp((n · log own ratio + prior_points · the pooled log ratio) / (n + prior_points)), n the series' holdout
    points, the pooled log ratio the mean over the series of its model type without their highest and lowest
    tenth (at least one of each from 3 series on: ``trimmed_mean``). ``pooled``: that mean per model type
    (``pooled_log_ratios``) over more series than these, e.g. the latest models of every store; without it, over
    these series (their ``eligible`` ones: not a fallback to the baseline). NaN stays NaN (undefined is rejected),
    ``prior_points`` 0 gives the own ratio.

    Why: a weekly holdout of two periods decides by a coin toss. On orangeJuice (913 series, 2 weeks after a
    1-week gap) a model with about half the baseline's error over 12 windows was kept from
    28 % of series by the gate on its own holdout, and those series got the baseline's forecasts; weighed with
    the other series, the same gate serves the model where it is better on average and still rejects a model
    type that is worse than the baseline across the stores, or a series with a long holdout that it clearly loses.
    Trimmed: one junk series (a ×1,000 spike in its holdout, ratio 1,000) moved tuna's mean log ratio of seven
    series by a whole unit, and an ordinary series' decision with it. Not the median: on tuna's seven series it
    is the middle one's tie (1.03) where the trimmed mean still holds the series the model wins by far (0.85),
    and with the median the gate served the model to 3 of 7 series rather than 7."""
    rel = np.asarray(rel, dtype=float)
    if prior_points <= 0 or not len(rel):
        return rel.copy()
    log_rel = log_ratio(rel)
    n = np.nan_to_num(np.asarray(points, dtype=float), nan=0.0)
    pools = pooled if pooled is not None else pooled_log_ratios(rel, model_types, eligible)
    mean = np.array([pools.get(t, (np.nan, 0))[0] for t in np.asarray(model_types, dtype=object)], dtype=float)
    weighed = np.where(np.isfinite(mean), (n * log_rel + prior_points * mean) / (n + prior_points), log_rel)
    return np.exp(weighed)


WAPE_TIE = 1e-9  # WAPE differences below this are rounding, not accuracy

def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _fmt(value) -> str:
    return "n/a" if _missing(value) else f"{value:.3f}"


def _own(own_rel, points, pool: tuple[float, int] | None = None) -> str:
    """What a weighed ratio was weighed with: the pool (its ratio and series, ``pooled_log_ratios``) and the
    series' own holdout."""
    if _missing(own_rel):
        return ""
    n = "" if _missing(points) else f" of {points:g} points"
    with_ = ("its model type's series" if pool is None or _missing(pool[0]) else
             f"{pool[1]:,} series of its model type in every store ({pool[0]:.3f} x)")
    return f" weighed with {with_}, its own holdout{n} {own_rel:.3f} x"


UNSCORED = "the champion could not be re-scored on the holdout"
BEATEN = "does not beat the baseline"  # rule (a)'s failure
# A champion whose recipe refitted before the challenger's holdout is the challenger's own holdout fit (the same
# model type and options, ``promote_entry.refits_as_challenger``): when that challenger does not beat the
# baseline, neither does the champion on the newest evidence. It kept serving while every challenger failed (a
# trial: one champion served 9 days at 5 times the baseline's realised error); it is retired instead.
RETIRED = "is retired (the baseline serves the series until a challenger passes)"  # in every retiring reason
CHAMPION_RETIRED = ("the champion is the same model type and options, which fitted before this holdout is this "
                    f"challenger: it does not beat the baseline either and {RETIRED}")
# a run again over unchanged data (a retried cycle, a backfill of days already done) refits the champion itself
# (``forecasting.fit_digest``): promoting it would write a production version that changes nothing
SAME_FIT = ("it is the champion's own fit (the same rows, model type, options and settings: a run again over "
            "unchanged data), so the champion stays and no production version is written")
# A champion of another recipe, or fitted before the holdout's origin, is re-scored on the holdout of a rejected
# challenger: without it a champion promoted before a series' sales stopped kept forecasting 1,300-1,700 a week
# through 16 weeks of zeros, every challenger since "tying the baseline" (both forecast 0) and so rejected.
CHAMPION_RESCORED_RETIRED = ("the champion, re-scored on this holdout, does not beat the baseline either ({ratio}) "
                             f"and {RETIRED}")

HOLDOUT_REPLACED = ("its holdout forecast left the sanity envelope and was replaced by the baseline's: the holdout "
                    "judged the baseline, not the model, which may leave the envelope where it would serve")
# the same, for a series that sold nothing in the envelope's window before its holdout: any sale forecast leaves it
NO_RECENT_SALE = (f"no sale before its holdout: its model's data sold nothing in their last {WINDOW_WORDS} (the "
                  "sanity envelope's window), so the envelope allows a forecast of 0 only; its model forecast sales "
                  "and was replaced by the baseline's, so the holdout judged the baseline, not the model")


_FIGURES = re.compile(r"\s-?[\d.]+")


def rule_of(reason: str) -> str:
    """The rule a decision's reason names, without the series' own figures, so that the reasons of one rule add
    up in a count (the cycle summary, the promotion report): the reason up to its first ':', '(' or ';', its
    numbers dropped ("accuracy 0.612 < min_accuracy 0.80" -> "accuracy < min_accuracy")."""
    head = re.split(r"[:(;]", str(reason), maxsplit=1)[0]
    return _FIGURES.sub("", head).strip()


def business_rules(rule: GateRule, model_type: str, status: str, accuracy, mase, rel_baseline,
                   own_rel=None, points=None, by: str = "MAE", holdout_replaced: bool = False,
                   pool: tuple[float, int] | None = None, no_recent_sale: bool = False) -> str | None:
    """Why the challenger fails rules (a)/(b), or None if it passes them. ``rel_baseline`` is the ratio the gate
    judges (``weigh_rel_baseline``) of the error ``by`` names (MAE, or RMSE for an intermittent series);
    ``own_rel`` and ``points``, the series' own, and ``pool`` (what it was weighed with: ``_own``) go into the
    reason. ``holdout_replaced``: the challenger's
    holdout forecast was the baseline's (``HOLDOUT_REPLACED``): no evidence, whatever other series say;
    ``no_recent_sale``: its holdout model's data sold nothing in the envelope's window (``NO_RECENT_SALE``)."""
    if status == "fallback":
        return "challenger is the baseline (fallback), which is never promoted"
    if model_type in BASELINE_TYPES:  # auto's choice by the series' own backtest, or a baseline model type
        return (f"challenger is the baseline (model type {model_type}, trained: auto's choice by the series' own "
                "backtest, or model.type), which is never promoted")
    if holdout_replaced:
        return NO_RECENT_SALE if no_recent_sale else HOLDOUT_REPLACED
    if not _missing(own_rel) and own_rel == 1.0 and not _missing(rel_baseline) and rel_baseline < 1.0:
        n = "" if _missing(points) else f" over {points:g} points"
        return (f"ties the baseline on its own holdout ({by} 1.000 x the baseline's{n}: the same error, e.g. the "
                "zeros of a series without sales, which its baseline forecasts): no evidence for the model, "
                "whatever other series say")
    if _missing(rel_baseline):
        return ("baseline comparison is undefined (holdout too short, no actuals, or the baseline made no error: e.g. "
                "it forecast 0 and every actual was 0)")
    if not _missing(own_rel) and math.isinf(own_rel):  # ``promote_entry.baseline_was_exact``
        return (f"{BEATEN}: the baseline forecast the holdout without error (e.g. the zeros of a series that "
                f"stopped selling) and this challenger did not ({by} {rel_baseline:.3f} x weighed with its model "
                "type's series)")
    if rel_baseline >= 1.0:
        return f"{BEATEN}: {by} {rel_baseline:.3f} x the baseline's on the holdout" + _own(
            own_rel, points, pool)
    if rule.min_accuracy is not None:
        if _missing(accuracy):
            return "accuracy is undefined (holdout too short or all actuals zero)"
        if accuracy < rule.min_accuracy:
            return f"accuracy {accuracy:.3f} < min_accuracy {rule.min_accuracy:.2f}"
    if rule.max_mase is not None:
        if _missing(mase):
            return "MASE is undefined (no seasonal-naive scale on the training data)"
        if mase >= rule.max_mase:
            return f"MASE {mase:.3f} >= max_mase {rule.max_mase:.2f}"
    return None


def decide(
    rule: GateRule,
    model_type: str,
    status: str,
    accuracy,
    mase,
    challenger_wape,
    champion_wape=None,
    has_champion: bool = False,
    rel_baseline=None,
    own_rel=None,
    points=None,
    by: str = "MAE",
    holdout_replaced: bool = False,
    same_recipe: bool = False,
    pool: tuple[float, int] | None = None,
    no_recent_sale: bool = False,
) -> tuple[str, str]:
    """(decision, reason) for one series. ``same_recipe``: the champion is the challenger's model type and options
    fitted on older data, so its score on this holdout is the challenger's own (rule (c) cannot tell them apart,
    and the reason says so rather than quoting a comparison that did not happen)."""
    failure = business_rules(rule, model_type, status, accuracy, mase, rel_baseline, own_rel, points, by,
                             holdout_replaced, pool, no_recent_sale)
    if failure is not None:  # a rejected challenger leaves the series to its champion, else to its baseline
        return REJECTED, failure + ("; the champion stays" if has_champion else
                                    "; the baseline serves the series" if "never promoted" in failure else "")
    passes = (f"passes the gate ({by} {rel_baseline:.3f} x the baseline's{_own(own_rel, points, pool)}; "
              f"accuracy {_fmt(accuracy)})")
    if not has_champion:
        return PROMOTED, f"{passes}; no champion yet"
    if same_recipe:  # also when the holdout's WAPE is undefined (every actual 0): the same model either way
        return PROMOTED, (f"{passes}; the champion is the same model type and options fitted on older data, whose "
                          "score on this holdout is this fit's: the fresher model replaces it")
    if _missing(champion_wape):
        return PROMOTED, f"{passes}; {UNSCORED}"
    # WAPE_TIE: the challenger's WAPE comes from the vectorised trainer, the champion's from re-scoring it alone;
    # the same model on the same data differs by rounding (~1e-12) only, and that is a tie (fresher model wins)
    if challenger_wape <= champion_wape + rule.champion_tolerance + WAPE_TIE:
        return PROMOTED, (
            f"passes the gate and WAPE {challenger_wape:.3f} <= champion's {champion_wape:.3f}"
            + (f" + {rule.champion_tolerance:.3f}" if rule.champion_tolerance else "")
        )
    digits = _telling_digits(challenger_wape, champion_wape)
    return KEPT_CHAMPION, (
        f"passes the gate but WAPE {challenger_wape:.{digits}f} is worse than the champion's {champion_wape:.{digits}f}"
        + (f" + {rule.champion_tolerance:.3f}" if rule.champion_tolerance else "")
    )


def _telling_digits(a: float, b: float, least: int = 3, most: int = 8) -> int:
    """Decimals that show two different WAPEs as different ("0.17512 is worse than 0.17504", not "0.175 is worse
    than 0.175")."""
    return next((d for d in range(least, most + 1) if f"{a:.{d}f}" != f"{b:.{d}f}"), most)
