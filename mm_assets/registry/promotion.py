"""The promotion gate's rules (pure functions, no I/O, no Dagster).

A challenger (the latest trained model of a series) becomes champion only if
  (a) its holdout accuracy (1 - WAPE) >= ``min_accuracy``            (the business rule),
  (b) its MASE < ``max_mase``                                         (it beats seasonal naive),
  (c) its holdout WAPE <= the current champion's WAPE on the same holdout + ``champion_tolerance``.
A fallback (seasonal-naive) model is never promoted: the baseline serves a series without champion anyway.
Every decision carries its reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PROMOTED = "promoted"
KEPT_CHAMPION = "kept_champion"
REJECTED = "rejected"


@dataclass(frozen=True)
class GateRule:
    min_accuracy: float = 0.80
    max_mase: float = 1.0
    champion_tolerance: float = 0.0

    @classmethod
    def from_settings(cls, settings) -> "GateRule":
        p = settings.promotion
        return cls(p.min_accuracy, p.max_mase, p.champion_tolerance)



WAPE_TIE = 1e-9  # WAPE differences below this are rounding, not accuracy

def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def business_rules(rule: GateRule, model_type: str, status: str, accuracy, mase) -> str | None:
    """Why the challenger fails rules (a)/(b), or None if it passes them."""
    if status == "fallback" or model_type == "seasonal_naive":
        return "challenger is the seasonal-naive fallback; the baseline serves the series without promotion"
    if _missing(accuracy):
        return "accuracy is undefined (holdout too short or all actuals zero)"
    if accuracy < rule.min_accuracy:
        return f"accuracy {accuracy:.3f} < min_accuracy {rule.min_accuracy:.2f}"
    if _missing(mase):
        return "MASE is undefined (no seasonal-naive scale on the training data)"
    if mase >= rule.max_mase:
        return f"MASE {mase:.3f} >= {rule.max_mase:.2f}: does not beat seasonal naive"
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
) -> tuple[str, str]:
    """(decision, reason) for one series."""
    failure = business_rules(rule, model_type, status, accuracy, mase)
    if failure is not None:
        return REJECTED, failure + ("; the champion stays" if has_champion else "")
    if not has_champion:
        return PROMOTED, f"passes the gate (accuracy {accuracy:.3f}, MASE {mase:.3f}); no champion yet"
    if _missing(champion_wape):
        return PROMOTED, "passes the gate; the champion could not be re-scored on the holdout"
    # WAPE_TIE: the challenger's WAPE comes from the vectorised trainer, the champion's from re-scoring it alone;
    # the same model on the same data differs by rounding (~1e-12) only, and that is a tie (fresher model wins)
    if challenger_wape <= champion_wape + rule.champion_tolerance + WAPE_TIE:
        return PROMOTED, (
            f"passes the gate and WAPE {challenger_wape:.3f} <= champion's {champion_wape:.3f}"
            + (f" + {rule.champion_tolerance:.3f}" if rule.champion_tolerance else "")
        )
    return KEPT_CHAMPION, (
        f"passes the gate but WAPE {challenger_wape:.3f} is worse than the champion's {champion_wape:.3f}"
        + (f" + {rule.champion_tolerance:.3f}" if rule.champion_tolerance else "")
    )
