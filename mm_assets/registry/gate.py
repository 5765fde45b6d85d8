"""The gate's bookkeeping around the promotion entry script: the manifest it reads, applying its decisions to the
production registry, healing champions it could not load, and the counts per store.

The decisions themselves are the entry script's (``registry.promotion.decide`` per series, through the runner);
this module turns them into registry writes. No Dagster here: the ``production_models`` asset wires it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mm_assets.forecasting.metrics import FIT_RECENT_MAX, metric_column, metric_columns
from mm_assets.forecasting.models import BASELINE_TYPES
from mm_assets.registry.promotion import (
    KEPT_CHAMPION,
    PROMOTED,
    REJECTED,
    pooled_log_ratios,
    weigh_rel_baseline,
)

CHALLENGER_COLUMNS = ["series_key", "partition_key", "ids", "model_type", "version", "status", "accuracy", "wape",
                      "mase", "metrics", "data_end", "artifact_uri", "artifact_offset", "artifact_size"]
CHAMPION_MANIFEST = ["series_key", "version", "artifact_uri", "artifact_offset", "artifact_size",
                     "wape", "data_end", "metrics"]  # the last three: its own holdout (``champion_holdout_*``)
# which training run made the challenger: a series its store's newest training run did not train has left the data
TRAINED_BY = ["run_id", "trained_at"]
# what the gate reads of the other stores' latest models: the evidence a short holdout is weighed with
EVIDENCE_COLUMNS = ["model_type", "status", "metrics"]


def judged_ratio(metrics) -> tuple[np.ndarray, np.ndarray]:
    """Per registry ``metrics`` JSON: the challenger's error ratio to its baseline that the gate judges, and by
    which error: RMSE for a series intermittent before its holdout (as its baseline was chosen: on sales that are
    mostly zero, absolute error prefers the lower of two forecasts of the mean, or zero), MAE otherwise and for
    models registered before the RMSE ratio was."""
    return _judged(metric_columns(metrics, JUDGED))


JUDGED = ["rel_mae_baseline", "rel_rmse_baseline", "intermittent", "envelope_replaced"]  # parsed once, all needed


def _judged(parsed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``judged_ratio`` of the ``JUDGED`` metrics already parsed."""
    mae, rmse = parsed["rel_mae_baseline"], parsed["rel_rmse_baseline"]
    by_rmse = (parsed["intermittent"] == 1) & ~np.isnan(rmse)
    return np.where(by_rmse, rmse, mae), np.where(by_rmse, "RMSE", "MAE")


def eligible_evidence(frame: pd.DataFrame, rel: np.ndarray, replaced: np.ndarray | None = None) -> np.ndarray:
    """Per registry row: whether its ratio ``rel`` says something about its model type: a trained model (not a
    fallback to the baseline, not a baseline type) whose holdout forecast was its own (not replaced by the
    baseline's for leaving the sanity envelope: ``replaced``, else read from its metrics), with a defined ratio."""
    if replaced is None:
        replaced = np.array(metric_column(frame["metrics"], "envelope_replaced"), dtype=float) == 1
    return ((frame["status"] != "fallback") & ~frame["model_type"].isin(BASELINE_TYPES)).to_numpy(dtype=bool) & (
        ~replaced & np.isfinite(np.asarray(rel, dtype=float)))


def promotion_manifest(challengers: pd.DataFrame, champions: pd.DataFrame, prior_points: float = 0.0,
                       default_points: int = 1, others: pd.DataFrame | None = None,
                       failures: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per series: the challenger's row and the champion's version and artifact (``champion_*``) and its own
    holdout's WAPE, last period and metrics (``champion_holdout_wape``, ``champion_holdout_end``,
    ``champion_metrics``), the challenger's own error
    ratio to the baseline (``rel_baseline``, by ``rel_baseline_by``: ``judged_ratio``) and the ratio the gate
    judges, weighed with the other series of its model type (``rel_baseline_weighed``,
    ``promotion.weigh_rel_baseline``; ``holdout_points`` of a model registered before they were recorded:
    ``default_points``, the horizon), with what it was weighed with: ``pool_ratio``, ``pool_series`` and
    ``pool_other_stores`` (those of them in ``others``).

    ``others``: the latest registry rows (``model_type``, ``status``, ``metrics``) of the stores not in this run.
    Why: the gate's evidence must not depend on how stores were cut into runs. A one-store run from the UI, or a
    daily cycle cut into runs of ``schedule.partitions_per_run`` stores, would otherwise weigh a store's short
    holdouts with its own few series only (one, for a store selling one item).

    ``failures``: each series' newest training failure (``series_key``, ``failed_at``): a series whose training
    failed after its latest version was trained is not retrained (``not_retrained``), also when every series of
    its store failed, where no newer run of the store is in the registry to tell."""
    chal = (challengers.reindex(columns=[*CHALLENGER_COLUMNS, *TRAINED_BY]) if len(challengers)
            else pd.DataFrame(columns=[*CHALLENGER_COLUMNS, *TRAINED_BY]))
    champ = champions.reindex(columns=CHAMPION_MANIFEST) if len(champions) else pd.DataFrame(columns=CHAMPION_MANIFEST)
    champ = champ.rename(columns={c: f"champion_{c}" for c in CHAMPION_MANIFEST if c != "series_key"}
                         | {"wape": "champion_holdout_wape", "data_end": "champion_holdout_end"})
    manifest = chal.merge(champ, on="series_key", how="outer")
    for col in ("version", "champion_version", "artifact_offset", "artifact_size", "champion_artifact_offset",
                "champion_artifact_size"):
        manifest[col] = pd.to_numeric(manifest[col], errors="coerce").astype("Float64")
    manifest["data_end"] = pd.to_datetime(manifest["data_end"])
    manifest["champion_holdout_end"] = pd.to_datetime(manifest["champion_holdout_end"])
    manifest["champion_holdout_wape"] = pd.to_numeric(manifest["champion_holdout_wape"], errors="coerce").astype(float)
    for col in ("accuracy", "wape", "mase"):
        manifest[col] = pd.to_numeric(manifest[col], errors="coerce").astype(float)
    parsed = metric_columns(manifest["metrics"], [*JUDGED, "holdout_points", FIT_RECENT_MAX])  # each row's JSON once
    manifest["rel_baseline"], manifest["rel_baseline_by"] = _judged(parsed)
    manifest["holdout_points"] = pd.Series(parsed["holdout_points"], index=manifest.index).fillna(float(default_points))
    # a holdout forecast replaced by the baseline (it left the sanity envelope) scored the baseline, not the model
    manifest["holdout_replaced"] = parsed["envelope_replaced"] == 1
    manifest["no_recent_sale"] = parsed[FIT_RECENT_MAX] == 0  # NaN (a model registered before it): not known
    eligible = eligible_evidence(manifest, manifest["rel_baseline"], manifest["holdout_replaced"].to_numpy())
    manifest["not_retrained"] = left_the_data(manifest)  # the newest training run did not train it (failed, or gone)
    if failures is not None and len(failures) and "trained_at" in manifest:
        failed_at = pd.to_datetime(manifest["series_key"].map(failures.set_index("series_key")["failed_at"]))
        manifest["not_retrained"] |= (failed_at > pd.to_datetime(manifest["trained_at"])).fillna(False).astype(bool)
    types = manifest["model_type"].fillna("").to_numpy(dtype=object)
    rel, pool_types, pool_eligible = manifest["rel_baseline"].to_numpy(dtype=float), types, eligible
    if others is not None and len(others):
        parsed = metric_columns(others["metrics"], JUDGED)  # each row's JSON once: all stores' rows may be many
        other_rel, _ = _judged(parsed)
        rel = np.r_[rel, other_rel]
        pool_types = np.r_[types, others["model_type"].fillna("").to_numpy(dtype=object)]
        pool_eligible = np.r_[eligible, eligible_evidence(others, other_rel, parsed["envelope_replaced"] == 1)]
    pooled = pooled_log_ratios(rel, pool_types, pool_eligible)
    from_others = Counter(pool_types[len(manifest):][pool_eligible[len(manifest):]])  # the pooled rows of others
    weighed = weigh_rel_baseline(manifest["rel_baseline"], manifest["holdout_points"], types, eligible,
                                 prior_points, pooled)
    manifest["rel_baseline_weighed"] = np.where(manifest["holdout_replaced"], manifest["rel_baseline"], weighed)
    manifest["pool_ratio"] = [float(np.exp(pooled[t][0])) if t in pooled else np.nan for t in types]
    manifest["pool_series"] = [pooled[t][1] if t in pooled else 0 for t in types]
    manifest["pool_other_stores"] = [from_others[t] for t in types]
    return manifest


def pooled_evidence(manifest: pd.DataFrame) -> dict[str, dict]:
    """Per model type in the manifest: what its series were weighed with (the run-wide figure the UI shows)."""
    if not len(manifest) or "pool_series" not in manifest:
        return {}
    pools = manifest[manifest["pool_series"] > 0].drop_duplicates("model_type")
    return {row.model_type: {"series": int(row.pool_series), "in_other_stores": int(row.pool_other_stores),
                             "trimmed_mean_ratio": round(float(row.pool_ratio), 4)}
            for row in pools.itertuples(index=False)}


@dataclass
class Healing:
    """Champions found unloadable by the gate and what became of them."""

    replaced: list[str] = field(default_factory=list)  # a passing challenger took over
    restored: list[str] = field(default_factory=list)  # copied again from the training registry
    unhealed: dict[str, str] = field(default_factory=dict)  # series_key -> why (served by the baseline)


def heal_champions(decided: pd.DataFrame, prod, registry, folder: str, run_id: str) -> Healing:
    """Champions the gate could not load: a promoted challenger already replaced them; the others are copied
    again from the training registry's bundle of their version."""
    healing = Healing()
    if decided.empty or "champion_unloadable" not in decided:
        return healing
    broken = decided[decided["champion_unloadable"].notna()]
    healing.replaced = broken.loc[broken["decision"] == PROMOTED, "series_key"].tolist()
    rest = broken[broken["decision"] != PROMOTED]
    if len(rest):
        sources = registry.rows_of(rest["series_key"], rest["champion_version"].astype(int))
        restored, healing.unhealed = prod.restore(sources, folder, run_id)
        healing.restored = restored["series_key"].tolist() if len(restored) else []
        missing = set(rest["series_key"]) - set(healing.restored) - set(healing.unhealed)
        healing.unhealed.update({key: "its version is not in the training registry" for key in missing})
    return healing


def apply_decisions(manifest: pd.DataFrame, decided: pd.DataFrame, prod, registry, run_id: str) -> tuple[set, Healing]:
    """Copy the promoted challengers' bytes into the production area, register them and every decision in one
    transaction, then heal the champions the gate could not load → (promoted series keys, healing)."""
    promoted = set(decided.loc[decided["decision"] == PROMOTED, "series_key"]) if len(decided) else set()
    challengers = manifest[manifest["series_key"].isin(promoted)].copy()
    for column in ("version", "artifact_offset", "artifact_size"):
        challengers[column] = challengers[column].astype("int64")
    challengers = challengers.set_index(pd.RangeIndex(len(challengers)))
    copied = prod.copy_artifacts(challengers, f"production/models/{run_id}")
    # a champion whose recipe, fitted as the challenger was, does not beat the baseline (``promote_entry``)
    retired = (decided.loc[decided["retire_champion"].fillna(False).astype(bool), "series_key"].tolist()
               if len(decided) and "retire_champion" in decided else [])
    prod.apply(copied, decided, run_id, retired)
    healing = heal_champions(decided, prod, registry, f"production/models/{run_id}-restored", run_id)
    return promoted, healing


def not_retrained(manifest: pd.DataFrame) -> pd.Series:
    """``left_the_data`` as ``promotion_manifest`` recorded it (``not_retrained``), or computed for a manifest
    without the column."""
    return manifest["not_retrained"].astype(bool) if "not_retrained" in manifest else left_the_data(manifest)


def left_the_data(manifest: pd.DataFrame) -> pd.Series:
    """Per manifest row: its series was not trained by its store's newest training run, which trains every series
    of the store's dataset or records its failure: the series has left the source (a delisted item, which the
    gate is not given; its champion stays and serves nothing until it returns), or its training failed there
    (the gate keeps its champion)."""
    if not len(manifest) or "trained_at" not in manifest or manifest["trained_at"].isna().all():
        return pd.Series(False, index=manifest.index)
    trained_at = pd.to_datetime(manifest["trained_at"])
    newest = manifest.loc[trained_at.groupby(manifest["partition_key"]).idxmax().dropna(), ["partition_key", "run_id"]]
    newest_run = manifest["partition_key"].map(dict(zip(newest["partition_key"], newest["run_id"])))
    return manifest["run_id"].notna() & newest_run.notna() & (manifest["run_id"] != newest_run)


def gate_counts(decided: pd.DataFrame, failures: pd.DataFrame, current: pd.DataFrame, keys: list[str],
                manifest: pd.DataFrame | None = None) -> dict:
    """Per store partition: series, decisions by kind, champions and how many are served by the baseline; with
    the ``manifest``, how many series the pooled evidence moved across the baseline rule: beaten on their own
    holdout but passing weighed with the other series of their model type, and the other way round."""
    moved = pd.DataFrame(columns=["partition_key", "passed", "failed"])
    if manifest is not None and len(manifest) and "rel_baseline_weighed" in manifest:
        own, weighed = manifest["rel_baseline"], manifest["rel_baseline_weighed"]
        moved = pd.DataFrame({"partition_key": manifest["partition_key"],
                              "passed": (own >= 1) & (weighed < 1), "failed": (own < 1) & (weighed >= 1)})
    # series whose own model is their baseline (too short, failed), of the store's newest training run
    fallback = (manifest.loc[(manifest["status"] == "fallback") & ~not_retrained(manifest), "partition_key"]
                .value_counts() if manifest is not None and len(manifest) else None)
    out = {}
    for key in keys:
        part = decided[decided["partition_key"] == key] if len(decided) else decided
        counts = part["decision"].value_counts() if len(part) else pd.Series(dtype=int)
        failed = failures[failures["partition_key"] == key] if len(failures) else failures
        series = len(part) + len(failed)
        # champions of series in the store's data: a delisted item's champion stays and serves nothing
        in_data = {*part.get("series_key", ()), *failed.get("series_key", ())}
        champions = (int(((current["partition_key"] == key) & current["series_key"].isin(in_data)).sum())
                     if len(current) else 0)
        out[key] = {
            "series": series,
            "promoted": int(counts.get(PROMOTED, 0)),
            "kept_champion": int(counts.get(KEPT_CHAMPION, 0)),
            "rejected": int(counts.get(REJECTED, 0)),
            "champions": champions,
            "served_by_baseline": series - champions,
            "served_by_baseline_share": round((series - champions) / series if series else 0.0, 3),
        }
        if fallback is not None:
            out[key]["fallback"] = int(fallback.get(key, 0))
        if manifest is not None:
            mine = moved[moved["partition_key"] == key]
            out[key]["passed_on_pooled_evidence"] = int(mine["passed"].sum())
            out[key]["failed_on_pooled_evidence"] = int(mine["failed"].sum())
    return out
