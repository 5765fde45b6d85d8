"""The promotion report: how many series have, or would get, a gate-passing model (no writes).

Used as a DevOps pipeline gate (a DevOps pipeline applies the business rule): the rule comes from the
same settings as the promotion asset, and the command fails when too few series pass.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd

from mm_assets.registry.gate import promotion_manifest
from mm_assets.registry.model_registry import ModelRegistry
from mm_assets.registry.production import ProductionRegistry
from mm_assets.registry.promotion import GateRule, business_rules
from mm_assets.settings import Settings


def promotion_report(settings: Settings) -> dict:
    rule = GateRule.from_settings(settings)
    latest = ModelRegistry(settings.storage.registry).latest()
    champions = ProductionRegistry(settings.storage.production_registry).current()
    champion_keys = set(champions["series_key"]) if len(champions) else set()
    reasons: Counter[str] = Counter()
    passing = set()
    # the gate weighs a series' holdout with its run's series; here with every series of its model type
    manifest = promotion_manifest(latest, pd.DataFrame(), settings.promotion.prior_points, settings.horizon)
    for row, rel_baseline in zip(manifest.itertuples(index=False), manifest["rel_baseline_weighed"]):
        failure = business_rules(rule, row.model_type, row.status, row.accuracy, row.mase, rel_baseline,
                                 by=row.rel_baseline_by, holdout_replaced=bool(row.holdout_replaced))
        if failure is None:
            passing.add(row.series_key)
        else:
            reasons[failure.split(":")[0] if failure.startswith(("accuracy", "MASE", "does not")) else failure] += 1
    series = set(latest["series_key"]) | champion_keys if len(latest) else champion_keys
    covered = passing | champion_keys
    return {
        "rule": {"min_accuracy": rule.min_accuracy, "max_mase": rule.max_mase,
                 "champion_tolerance": rule.champion_tolerance},
        "series": len(series),
        "challengers_passing_rules": len(passing),
        "champions": len(champion_keys),
        "series_with_gate_passing_model": len(covered),
        "share": (len(covered) / len(series)) if series else 0.0,
        "failures_by_rule": {
            ("accuracy < min_accuracy" if k.startswith("accuracy") else "MASE >= max_mase" if k.startswith("MASE")
             else k): v
            for k, v in reasons.most_common()
        },
        "min_share": settings.promotion.report_min_promoted_share,
    }


def baseline_share_by_store(series: pd.Series, champions: pd.Series, partitions=None) -> pd.DataFrame:
    """Per store partition: (series, champions, series served by their baseline, share), from the number of
    series with a model version and the number with a champion per partition. Over every store, not only a
    run's: a check built on it stays red while any store is over, whichever batch ran last."""
    out = pd.DataFrame({"series": series}).join(champions.rename("champions")).fillna({"champions": 0})
    if partitions is not None:
        out = out[out.index.isin(list(partitions))]
    out["baseline"] = (out["series"] - out["champions"]).clip(lower=0).astype(int)
    out["share"] = (out["baseline"] / out["series"]).where(out["series"] > 0, 0.0)
    return out
