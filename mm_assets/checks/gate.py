"""The checks of ``production_models``, the promotion gate: a decision for every series, few series left to their
baseline, every champion loadable."""

from __future__ import annotations

import pandas as pd

from mm_assets.checks.verdict import Verdict
from mm_assets.registry.gate import Healing, not_retrained


def _why_baseline(c: dict) -> str:
    """Why a store's series are on their baseline: too short for a model (or fell back), or beaten by it."""
    short = min(c.get("fallback", 0), c["served_by_baseline"])
    beaten = c["served_by_baseline"] - short
    parts = ([f"{short} too short for the model or fell back (status fallback in model_metrics, with the reason)"]
             if short else []) + ([f"{beaten} whose challengers do not beat the baseline"] if beaten else [])
    return ", ".join(parts) or "no challenger passed the gate"


# fewer series than this: a store's share on the baseline is a warning, not an error (one series of one is 100 %)
FEW_SERIES = 3


NAMED_SERIES = 5  # series on their baseline a failed served_by_model names (the asset's on_baseline table has more)


def served_by_model(counts: dict, max_share: float, named: dict[str, list[str]] | None = None) -> dict[str, Verdict]:
    """Per store: at most ``max_share`` of its series served by their baseline (no champion); a store of fewer
    than ``FEW_SERIES`` series fails it as a warning (its share says little of the models: found on 88 accounts of
    one series each, where three stores turned red for one series whose challenger did not beat its baseline).
    A store over the share only by its series too short for a model (a new store, new items: status fallback) fails
    it as a warning too: every one of its series that could be judged is within the share, and the others get a
    model once their history is long enough (a trial's new store was red for five weeks)."""
    out = {}
    for key, c in counts.items():
        share = c["served_by_baseline_share"]
        few = c["series"] < FEW_SERIES
        judged = c["served_by_baseline"] - min(c.get("fallback", 0), c["served_by_baseline"])
        young = not few and share > max_share and judged <= max_share * c["series"]
        out[key] = Verdict(
            passed=share <= max_share, warn_only=few or young,
            metadata={"served_by_baseline": c["served_by_baseline"], "series": c["series"],
                      "served_by_baseline_share": share, "max_baseline_share": max_share},
            description=f"{c['served_by_baseline']} of {c['series']} series of store {key} are served by their "
            f"baseline ({share:.0%} > operations.max_baseline_share {max_share:.0%}): {_why_baseline(c)}"
            + _names((named or {}).get(key, []))
            + "; see the reasons in production_models' on_baseline table and promotion_decisions (mm-assets "
            "promotion-report)."
            + (f" A store of fewer than {FEW_SERIES} series: a warning." if few else "")
            + (" Without the series too short for a model it is within the share: a warning (a new store or new "
               "items get a model once their history is longer than model.min_train_periods + horizon)."
               if young else ""),
        )
    return out


def _names(series: list[str]) -> str:
    """`` (S05/I008, S05/I009 and 3 more)``: which series, not only how many."""
    if not series:
        return ""
    more = len(series) - NAMED_SERIES
    return f" ({', '.join(series[:NAMED_SERIES])}{f' and {more} more' if more > 0 else ''})"


def decision_for_every_series(manifest, counts: dict) -> dict[str, Verdict]:
    """Per store: a decision (or a recorded failure) for every series the gate was given: the series of the
    store's data, not those that have left the source since they were trained (``left_the_data``; counted
    apart)."""
    gone = not_retrained(manifest) if len(manifest) else pd.Series(dtype=bool)
    given = manifest.loc[~gone, "partition_key"].value_counts() if len(manifest) else {}
    left = manifest.loc[gone, "partition_key"].value_counts() if len(manifest) else {}
    out = {}
    for key, c in counts.items():
        expected = int(given.get(key, 0))
        out[key] = Verdict(
            passed=c["series"] >= expected,
            # the series expected to get a decision, and apart those of the manifest the newest training did not
            # train (gone from the source, or failed there): the gate decides for them too (their champion stays)
            metadata={"series_trained_in_newest_run": expected, "decided_or_failed": c["series"],
                      "series_not_in_newest_training": int(left.get(key, 0))},
            description=(
                f"none of the {expected} series of store {key} got a decision: a store gone from the source has no "
                f"rows to judge (the every_partition_has_rows check names it; retire it: mm-assets retire-partition "
                f"{key}); otherwise see the run's failures (mm-assets failures --store {key})." if not c["series"] else
                f"{expected - c['series']} of {expected} series of store {key} got no decision: see the run's failures "
                f"(mm-assets failures --store {key})."),
        )
    return out


CHECKS = {
    "decision_for_every_series": "The gate recorded a decision with a reason (or a failure) for every series of the "
    "store.",
    "served_by_model": "At most operations.max_baseline_share of the store's series are served by their baseline "
    "(no champion).",
}


def champions_loadable(healing: Healing) -> Verdict:
    """The ``champions_loadable`` check of one gate run: a champion that could not be loaded and was healed
    (replaced by a passing challenger, or copied again from the training registry) warns; one not healed fails."""
    broken = len(healing.replaced) + len(healing.restored) + len(healing.unhealed)
    examples = [f"{key}: {why}" for key, why in list(healing.unhealed.items())[:10]]
    return Verdict(
        passed=broken == 0, warn_only=not healing.unhealed,
        description=None if broken == 0 else (
            f"{broken} champions could not be loaded: {len(healing.replaced)} replaced by a passing challenger, "
            f"{len(healing.restored)} restored from the training registry, {len(healing.unhealed)} not healed "
            "(served by the baseline until a challenger passes; retrain the series)"),
        metadata={"unloadable": broken, "replaced": len(healing.replaced), "restored": len(healing.restored),
                  "not_healed": len(healing.unhealed), "not_healed_examples": examples},
    )
