"""The promotion report: how many series have, or would get, a gate-passing model (no writes).

Used as a DevOps pipeline gate (a DevOps pipeline applies the business rule): the rule comes from the
same settings as the promotion asset, and the command fails when too few series pass.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

import pandas as pd

from mm_assets.registry.gate import promotion_manifest
from mm_assets.registry.model_registry import ModelRegistry
from mm_assets.registry.production import ProductionRegistry
from mm_assets.registry.promotion import CANNOT_SERVE, PROMOTED, GateRule, business_rules, rule_of
from mm_assets.settings import Settings

EXAMPLES = 3  # series named per rule failed


def promotion_report(settings: Settings, retired: Collection[str] = ()) -> dict:
    """The report over the series of every store the registries hold but the ``retired`` ones (the warehouse's
    ``retired_partitions``). A retired store's models and champions stay in the registries, but it is not served
    any more: counting it would let a store gone from the source hold the share up (or down)."""
    rule = GateRule.from_settings(settings)
    latest = ModelRegistry(settings.storage.registry).latest()
    production = ProductionRegistry(settings.storage.production_registry)
    champions = production.current()
    latest, dropped = _without(latest, set(retired))
    champions, dropped_champions = _without(champions, set(retired))
    left_out = dropped | dropped_champions
    champion_keys = set(champions["series_key"]) if len(champions) else set()
    # a champion its store's newest gate run found unable to forecast with the settings (trained for a shorter
    # horizon, say) serves nothing: its series is on its baseline, so it is no gate-passing model
    unfit = set()
    if len(champions):
        newest = production.newest_decisions(sorted(set(champions["partition_key"])))
        if len(newest):
            # a promoted decision names the champion it replaced as unfit: the new one serves
            stays = newest["decision"] != PROMOTED
            unfit = set(newest.loc[stays & newest["reason"].str.contains(CANNOT_SERVE, regex=False), "series_key"])
            champions = champions[~champions["series_key"].isin(unfit)]
    reasons: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}  # per rule, its series
    passing = set()
    # as the gate: a series' holdout weighed with the latest models of its model type in every store
    manifest = promotion_manifest(latest, pd.DataFrame(), settings.promotion.prior_points, settings.horizon)
    for row, rel_baseline in zip(manifest.itertuples(index=False), manifest["rel_baseline_weighed"]):
        # the own ratio too, as the gate judges it: a tie on the series' own holdout is no evidence of the model
        failure = business_rules(rule, row.model_type, row.status, row.accuracy, row.mase, rel_baseline,
                                 row.rel_baseline, row.holdout_points, by=row.rel_baseline_by,
                                 holdout_replaced=bool(row.holdout_replaced), no_recent_sale=bool(row.no_recent_sale))
        if failure is None:
            passing.add(row.series_key)
        else:
            rule_failed = rule_of(failure)
            reasons[rule_failed] += 1
            examples.setdefault(rule_failed, []).append(row.series_key)
    series = set(latest["series_key"]) | champion_keys if len(latest) else champion_keys
    # a champion counts if it meets today's floors on the holdout it was promoted on: one promoted under a lower
    # min_accuracy still serves, but does not pass the rule this report applies
    fit = set(champions.loc[[_meets_floors(rule, a, m) for a, m in zip(champions["accuracy"], champions["mase"])],
                            "series_key"]) if len(champions) else set()
    covered = passing | fit
    return {
        "rule": {"min_accuracy": rule.min_accuracy, "max_mase": rule.max_mase,
                 "champion_tolerance": rule.champion_tolerance},
        "series": len(series),
        "challengers_passing_rules": len(passing),
        "champions": len(champion_keys),
        "champions_below_floors": len(champion_keys - fit - unfit),
        "champions_unfit_for_settings": len(unfit & champion_keys),
        "series_with_gate_passing_model": len(covered),
        "share": (len(covered) / len(series)) if series else 0.0,
        "failures_by_rule": dict(reasons.most_common()),
        "failure_examples": {rule: sorted(keys)[:EXAMPLES] for rule, keys in examples.items()},
        "min_share": settings.promotion.report_min_promoted_share,
        "retired_partitions_left_out": len(left_out),
    }


def _without(frame: pd.DataFrame, stores: set[str]) -> tuple[pd.DataFrame, set[str]]:
    """``frame`` without the rows of ``stores`` (by ``partition_key``), and which of them it held."""
    if not stores or not len(frame):
        return frame, set()
    mine = frame["partition_key"].isin(stores)
    return frame[~mine], set(frame.loc[mine, "partition_key"])


def _meets_floors(rule: GateRule, accuracy, mase) -> bool:
    """Whether a champion's stored holdout accuracy and MASE meet the rule's optional floors (b)."""
    if rule.min_accuracy is not None and not (accuracy is not None and accuracy == accuracy
                                              and accuracy >= rule.min_accuracy):
        return False
    return rule.max_mase is None or (mase is not None and mase == mase and mase < rule.max_mase)


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
