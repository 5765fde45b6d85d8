"""Promotion entry script (Azure ML parallel-job contract): one mini-batch = one series, or many (local runner).

``init()`` loads the promotion manifest (per series: the challenger, i.e. the latest trained model, with its
holdout metrics, and the current champion if any). ``run()`` applies the gate's rules; when the challenger
passes (a) and (b) and a champion exists, the champion is re-scored on the challenger's holdout (forecast from
the same origin, the last ``horizon`` periods up to the challenger's data end, ``gap`` periods after the origin) so
(c) compares like with like.
It returns one decision row per series; it writes nothing: the promotion step applies the decisions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from mm_assets.forecasting import holdout
from mm_assets.forecasting.backtest import model_params
from mm_assets.forecasting.baseline import Baseline
from mm_assets.forecasting.fit_digest import FIT_DIGEST, same_fit
from mm_assets.forecasting.global_training import BATCH_ID, BATCH_SERIES, train_global
from mm_assets.forecasting.metrics import (
    FINGERPRINT,
    HOLDOUT_PERIODS,
    forecast_metrics,
    holdout_periods_or_one_window,
    metric_column,
    same_actuals,
)
from mm_assets.forecasting.models import as_series_model, cannot_serve, is_global, make_model
from mm_assets.forecasting.series import DS, SeriesConfig, Y, regularize
from mm_assets.forecasting.training import STATUS_TRAINED
from mm_assets.ids import series_key
from mm_assets.ingest.target_rules import STOPPED_EXPECTED_SALES
from mm_assets.parallel.bundles import SHARED_MODEL_BYTES, BundleCache, BundleError
from mm_assets.parallel.contract import MiniBatchContext, manifest_init, series_in
from mm_assets.registry.promotion import (
    BEATEN,
    CANNOT_SERVE,
    CHAMPION_RESCORED_RETIRED,
    CHAMPION_RETIRED,
    SAME_FIT,
    UNSCORED,
    GateRule,
    business_rules,
    decide,
    weigh_rel_baseline,
)

_state: dict = {}
OTHER_BATCH = ("it is the same model type and options fitted on older data of another set of series (a series came "
               "to or left the run), which only refitting every series it learnt from could score here: the fresher "
               "model replaces it")


def init() -> None:
    _state.update(manifest_init("mm-assets promotion entry script"))
    _state["rule"] = GateRule.from_settings(_state["settings"])


def _present(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _same(a, b) -> bool:
    """Equal ratios, NaN equal to NaN."""
    if not (_present(a) and _present(b)):
        return not _present(a) and not _present(b)
    if math.isinf(float(a)) or math.isinf(float(b)):
        return float(a) == float(b)
    return abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(b)))


def load_champion(entry: dict, cache: BundleCache, ids: list[str] | None = None):
    """The champion's model from its production bundle (``BundleError`` when its bytes cannot be read)."""
    return as_series_model(cache.model(entry["champion_artifact_uri"], int(entry["champion_artifact_offset"]),
                                       int(entry["champion_artifact_size"])), ids or [])


def champion_wape_on_holdout(entry: dict, mini_batch: pd.DataFrame, cfg: SeriesConfig, champion,
                             challenger_params: dict | None = None) -> float:
    """WAPE of the champion on the challenger's holdout, forecast from the same origin.

    Fair play: a champion trained after the holdout's origin has seen part of the holdout, so its recipe (model
    type and parameters) is refit on the data before the origin, as the challenger's was; a champion trained
    before the origin forecasts as it is. Same recipe, same data → same score, and the fresher model wins ties.
    A global model's recipe is the whole batch, which one series cannot refit: a global champion of another
    recipe that saw the holdout is scored by ``global_champion_refits`` (here NaN); of the same recipe, by the
    challenger's own holdout fit, as below.

    The refit of a champion whose recipe is the challenger's (``challenger_params``: the options the challenger
    was trained with) is the challenger's own holdout model: its score is the challenger's holdout WAPE, known
    without fitting again. That is the every-day case (yesterday's model, today's data), which would otherwise
    refit every series of a run one by one.
    """
    if challenger_params is not None and refits_as_challenger(entry, cfg, champion, challenger_params):
        return math.nan if entry.get("wape") is None else float(entry["wape"])
    if champion.last_ds > holdout_origin(entry, cfg) and is_global(champion.name):
        return holdout_wape_on_the_same_data(entry)
    scored = champion_on_holdout(entry, mini_batch, cfg, champion)
    if scored is None:
        return math.nan
    actual, prediction, _ = scored
    return forecast_metrics(actual, prediction, np.array([]), cfg.season)["wape"]


def challenger_windows(entry: dict, cfg: SeriesConfig) -> int:
    """How many windows of the horizon the challenger's holdout held (``forecasting.holdout``), as its metrics
    record (``holdout_periods``; one for a model registered before they did)."""
    periods = holdout_periods_or_one_window(metric_column([entry.get("metrics")], HOLDOUT_PERIODS)[0], cfg.horizon)
    return max(1, int(round(float(periods) / cfg.horizon)))


def holdout_origin(entry: dict, cfg: SeriesConfig) -> pd.Timestamp:
    """The newest period the challenger's holdout model was fitted on: a champion trained after it saw part of
    the holdout."""
    return pd.Timestamp(entry["data_end"]) - holdout.held_out(challenger_windows(entry, cfg), cfg) * cfg.step


def champion_on_holdout(entry: dict, mini_batch: pd.DataFrame, cfg: SeriesConfig, champion
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(the actuals of the challenger's holdout windows, the champion's forecast of each from its own origin, the
    baseline's, chosen on the data before the holdout as the challenger's was), the champion's recipe refitted
    before the holdout when it saw it (``champion_wape_on_holdout``); None when it cannot be scored here: the
    series is too short, or a global champion saw the holdout."""
    rows = mini_batch[pd.to_datetime(mini_batch[DS]) <= pd.Timestamp(entry["data_end"])]
    frame = regularize(rows, cfg)
    windows = challenger_windows(entry, cfg)
    n_fit = len(frame) - holdout.held_out(windows, cfg)
    if len(frame) <= cfg.horizon + cfg.gap + 1 or n_fit < 1:
        return None
    train = frame.iloc[:n_fit]
    if champion.last_ds > train.index[-1]:
        if is_global(champion.name):
            return None
        champion = make_model(champion.name, cfg, champion.params).fit(train)
    yardstick = Baseline(cfg).fit(train)
    actual, prediction, base = [], [], []
    for n_origin, periods in holdout.frame_windows(len(frame), windows, cfg):
        history, test = frame.iloc[:n_origin], frame.iloc[periods]
        actual.append(test[Y].to_numpy(dtype=float))
        prediction.append(np.asarray(champion.predict(test, history=history), dtype=float))
        base.append(np.asarray(yardstick.predict(test, history=history), dtype=float))
    return np.concatenate(actual), np.concatenate(prediction), np.concatenate(base)


def champion_against_baseline(entry: dict, mini_batch: pd.DataFrame, cfg: SeriesConfig, champion,
                              by: str = "MAE") -> tuple[float, float]:
    """(the champion's error ratio to the series' baseline on the challenger's holdout, its holdout points): the
    error ``by`` names (MAE, or RMSE for an intermittent series: as the challenger was judged), the baseline chosen
    at the holdout's origin as training chose the challenger's. A baseline without error against a champion whose
    errors add up to ``STOPPED_EXPECTED_SALES`` or more: infinite (less, a slow mover's: undefined, as for a
    challenger, ``baseline_was_exact``). NaN when the champion cannot be scored here (``champion_on_holdout``)."""
    scored = champion_on_holdout(entry, mini_batch, cfg, champion)
    if scored is None:
        return math.nan, 0.0
    actual, prediction, base = scored
    metrics = forecast_metrics(actual, prediction, np.array([]), cfg.season, y_baseline=base)
    ratio = metrics["rel_rmse_baseline" if by == "RMSE" else "rel_mae_baseline"]
    missed = float(np.nansum(np.abs(actual - prediction)))
    if math.isnan(ratio) and metrics["holdout_points"] > 0 and missed >= STOPPED_EXPECTED_SALES:
        ratio = math.inf  # the baseline was exact (the zeros of a series whose sales stopped), the champion not
    return ratio, float(metrics["holdout_points"])


def holdout_wape_on_the_same_data(entry: dict) -> float:
    """A global champion's own holdout WAPE when its data ended where the challenger's do and its holdout held the
    same actuals (the same holdout: its recipe's holdout fit scored these very values), else NaN (it cannot be
    re-scored without refitting every series it learnt from). A late correction of a holdout period leaves the
    data's end as it was: the champion's recorded WAPE is then of actuals that are no longer the data's."""
    end, wape = entry.get("champion_holdout_end"), entry.get("champion_holdout_wape")
    if not _present(end) or not _present(wape) or pd.Timestamp(end) != pd.Timestamp(entry["data_end"]):
        return math.nan
    mine, theirs = (metric_column([entry.get(m)], FINGERPRINT)[0] for m in ("metrics", "champion_metrics"))
    return float(wape) if same_actuals(mine, theirs) else math.nan


def nearby_holdout_wape(entry: dict, cfg: SeriesConfig) -> float:
    """A global champion's own holdout WAPE when that holdout ended at most ``horizon`` periods before the
    challenger's (the next day's or week's data), else NaN: what rule (c) compares with when the champion is of
    another recipe, saw this holdout, and cannot be refitted on every series it learnt from. Not the same holdout,
    but both are forecasts of periods the model had not seen, a period or a few apart; without it a challenger of
    another model type passed unjudged on the day the settings changed, and on cheese 15 of 25 such promotions put
    a linear model in the place of a LightGBM one that was better by more than a point of WAPE on the very same
    holdout (0.241 against 0.042, say)."""
    end, wape = entry.get("champion_holdout_end"), entry.get("champion_holdout_wape")
    if not _present(end) or not _present(wape):
        return math.nan
    behind = pd.Timestamp(entry["data_end"]) - pd.Timestamp(end)
    return float(wape) if pd.Timedelta(0) <= behind <= cfg.horizon * cfg.step else math.nan


def refits_as_challenger(entry: dict, cfg: SeriesConfig, champion, challenger_params: dict) -> bool:
    """Whether the champion saw the challenger's holdout and is its recipe (``_same_recipe``, and for a global
    model the same series learnt from: ``_same_batch``): then its refit before the holdout is the challenger's own
    holdout fit, and rule (c) compares the challenger with itself.

    Not for a global champion whose data ended where the challenger's do: its own holdout WAPE is its score on
    this very holdout, and is compared (``holdout_wape_on_the_same_data``). A global model learns from every
    series of its batch, so one row of another series (a period file rebuilt, a correction) refits every series
    differently: on cheese, a week lost in one store moved another store's WAPE from 0.327 to 0.551."""
    seen = champion.last_ds > holdout_origin(entry, cfg)
    if not seen or not _same_recipe(champion, entry["model_type"], challenger_params, cfg):
        return False
    if not is_global(champion.name):
        return True
    return _same_batch(entry) and math.isnan(holdout_wape_on_the_same_data(entry))


def _same_batch(entry: dict) -> bool:
    """Did the global champion learn from the series the challenger learnt from (``batch_id`` of their metrics)?
    A store re-run alone, or a batch cut otherwise, makes another model of the same options. Unknown (a model
    registered before the id was recorded): taken as the same, as it was then."""
    mine = metric_column([entry.get("metrics")], BATCH_ID)[0]
    theirs = metric_column([entry.get("champion_metrics")], BATCH_ID)[0]
    return math.isnan(mine) or math.isnan(theirs) or mine == theirs


def _same_recipe(champion, model_type: str, params: dict, cfg: SeriesConfig) -> bool:
    """Would refitting the champion fit what the challenger's holdout fit (same model class and options)?"""
    if is_global(champion.name):  # a global model's view of one series: its recipe is the type and options
        return model_type == champion.name and params == champion.params
    try:
        recipe = make_model(model_type, cfg, params)
        return type(recipe) is type(champion) and bool(recipe.params == champion.params)
    except (KeyError, TypeError, ValueError):  # an unknown type, or options that do not compare: refit
        return False


def run(mini_batch: pd.DataFrame, mini_batch_context: MiniBatchContext) -> pd.DataFrame:
    """One series (Azure ML ``partition_keys``) or many (local runner, ``series_per_minibatch``): one decision
    row per series."""
    id_cols = list(_state["settings"].columns.ids)
    series = series_in(mini_batch, mini_batch_context, id_cols)
    refits = global_champion_refits(mini_batch, series, id_cols)
    # a series' rows are cut from the mini-batch only if its champion is re-scored: most days none is
    return pd.DataFrame([_decide(lambda lo=lo, hi=hi: mini_batch.iloc[lo:hi], ids, id_cols, refits)
                         for lo, hi, ids in series])


def global_champion_refits(mini_batch: pd.DataFrame, series: list, id_cols: list[str]) -> dict[str, float | str]:
    """Series key → holdout WAPE of its global champion's recipe refit before the challenger's holdout, for the
    series whose global champion saw that holdout and whose challenger is of another recipe (the model type or
    its options changed); or, for such a champion that learnt from more series than the mini-batch holds, why it
    is not refitted (text).

    A global model cannot be refitted for one series, but its recipe can be refitted on the mini-batch's series
    (the store or stores the runner hands together), as training fits it: one fit for all of them. Without it a
    challenger of another type replaced every global champion unjudged (rule c). The same recipe needs no refit:
    its refit is the challenger's own holdout model, and the fresher one is promoted.

    Only a refit that learns from as many series as the champion did is that champion's recipe: refitted on the
    one series of a store, a champion that had learnt from 88 scored WAPE 0.659 where it had scored 0.220 on the
    very same holdout, and lost to a challenger of 0.652. A champion whose data ended where the challenger's do
    needs no refit at all: its own holdout is this one (``holdout_wape_on_the_same_data``)."""
    cfg, model = _state["cfg"], _state["settings"].model
    wanted: dict[str, list[int]] = {}
    recipes: dict[str, dict] = {}
    learnt: dict[int, float] = {}  # series index -> how many series its champion learnt from (NaN: not recorded)
    for index, (_, _, ids) in enumerate(series):
        key = series_key(ids)
        entry = _state["manifest"].get(key)
        if (entry is None or not _present(entry.get("champion_version")) or not _present(entry.get("version"))
                or int(entry["champion_artifact_size"]) < SHARED_MODEL_BYTES):  # a per-series champion: not read
            continue
        try:  # a global model is read once per mini-batch (the cache shares it), its per-series view only if needed
            shared = _state["cache"].model(entry["champion_artifact_uri"], int(entry["champion_artifact_offset"]),
                                           int(entry["champion_artifact_size"]))
        except BundleError:
            continue  # healed or replaced by the promotion step
        view = as_series_model(shared, ids)
        if view is shared or _same_recipe(view, entry["model_type"],
                                          model_params(entry["model_type"], model.params, model.type), cfg):
            continue
        if view.last_ds <= holdout_origin(entry, cfg):
            continue  # trained before the holdout: it forecasts as it is
        if not math.isnan(holdout_wape_on_the_same_data(entry)):
            continue  # its own holdout is the challenger's: scored exactly, no refit
        recipe = repr(sorted(shared.params.items()))
        wanted.setdefault(recipe, []).append(index)
        recipes[recipe] = dict(shared.params)
        learnt[index] = metric_column([entry.get("champion_metrics")], BATCH_SERIES)[0]
    out: dict[str, float | str] = {}
    for recipe, group in wanted.items():
        indices = [i for i in group if math.isnan(learnt[i]) or learnt[i] <= len(group)]
        for index in sorted(set(group) - set(indices)):
            out[series_key(series[index][2])] = (
                f"its global model learnt from {learnt[index]:,.0f} series, and refitted on the {len(group):,} "
                "series handed here it would be another, weaker model")
        if not indices:
            continue
        rows = pd.concat([mini_batch.iloc[series[i][0]:series[i][1]] for i in indices], ignore_index=True)
        _, outcomes, _ = train_global(rows, id_cols, cfg, {**recipes[recipe], "refit": False})
        for position, index in enumerate(indices):
            outcome = outcomes.get(position)
            if outcome is not None and outcome.status == STATUS_TRAINED:
                out[series_key(series[index][2])] = float(outcome.metrics.get("wape", math.nan))
    return out


def _decide(rows: Callable[[], pd.DataFrame], ids: list[str], id_cols: list[str],
            refits: dict[str, float] | None = None) -> dict:
    out = _judge(rows, ids, id_cols, refits)
    if out["champion_unloadable"]:  # said in every decision: the promotion step heals what is not replaced
        out["reason"] += f"; the champion's stored model cannot be loaded ({out['champion_unloadable']})"
    return out


def _judge(rows: Callable[[], pd.DataFrame], ids: list[str], id_cols: list[str],
           refits: dict[str, float] | None = None) -> dict:
    """The gate's decision for one series; ``rows`` gives its rows (only a champion re-scored reads them);
    ``refits``: global champions' recipes refitted for the mini-batch (``global_champion_refits``)."""
    cfg, rule = _state["cfg"], _state["rule"]
    key = series_key(ids)
    entry = _state["manifest"].get(key)
    has_champion = entry is not None and _present(entry.get("champion_version"))
    row = {**dict(zip(id_cols, ids)), "series_key": key, "champion_version": None, "champion_wape": None,
           "challenger_version": None, "challenger_model_type": None, "challenger_accuracy": None,
           "challenger_mase": None, "challenger_wape": None, "champion_unloadable": None}
    champion = None
    if has_champion:
        row["champion_version"] = int(entry["champion_version"])
        try:  # a champion whose stored bytes are broken must not block its series (it is healed or replaced)
            champion = load_champion(entry, _state["cache"], ids)
        except BundleError as exc:
            row["champion_unloadable"] = str(exc)
    # a champion that cannot forecast today's horizon or regressors does not hold a passing challenger back (rule c)
    short = cannot_serve(champion, cfg.horizon, cfg.gap, cfg.regressors, cfg.target) if champion is not None else None
    if entry is None or not _present(entry.get("version")):
        decision, reason = "rejected", "no trained model for this series (training failed or has not run)"
        if has_champion:
            reason += "; the champion stays"
        return {**row, "decision": decision, "reason": reason}
    row.update(challenger_version=int(entry["version"]), challenger_model_type=entry["model_type"],
               challenger_accuracy=entry["accuracy"], challenger_mase=entry["mase"], challenger_wape=entry["wape"])
    not_retrained = entry.get("not_retrained") in (True, 1)  # numpy's bool from the manifest file too
    if has_champion and not_retrained:  # an older version judged again would be no news, and could replace it
        return {**row, "decision": "kept_champion", "reason": _unfit(
            "kept_champion", "no new challenger: the store's newest training run did not train this series (it "
            "failed there: mm-assets failures); the champion stays", short)}
    if has_champion and int(entry["champion_version"]) == int(entry["version"]):
        return {**row, "decision": "kept_champion", "reason": "the challenger is the champion"}
    champion_wape = None
    # the ratio the gate judges, weighed with the other series of its model type (a manifest written before it:
    # the own ratio), and what it was weighed with (a manifest without the pool: unnamed)
    own_rel, points = entry.get("rel_baseline", entry.get("rel_mae_baseline")), entry.get("holdout_points")
    pool = (entry["pool_ratio"], int(entry["pool_series"])) if _present(entry.get("pool_ratio")) else None
    rel_baseline = entry.get("rel_baseline_weighed", entry.get("rel_mae_baseline_weighed", own_rel))
    by = entry.get("rel_baseline_by") or "MAE"
    if not _present(own_rel) and baseline_was_exact(entry):  # no ratio, yet the challenger was beaten
        own_rel = math.inf
        rel_baseline = weighed_as_challenger(entry, own_rel, points, entry["model_type"])
    if _same(rel_baseline, own_rel):
        own_rel = points = None  # nothing weighed: the reason names one ratio
    replaced = entry.get("holdout_replaced") in (True, 1)  # numpy's bool from the manifest file too
    no_sale = entry.get("no_recent_sale") in (True, 1)
    failure = business_rules(rule, entry["model_type"], entry["status"], entry["accuracy"], entry["mase"],
                             rel_baseline, own_rel, points, by, replaced, pool, no_sale)
    passes = failure is None
    judged = has_champion and champion is not None and not short  # a champion the challenger can be held to
    params = (model_params(entry["model_type"], _state["settings"].model.params, _state["settings"].model.type)
              if judged else None)
    # the champion is the challenger's recipe and saw its holdout: its refit is the challenger (judged by its ratio)
    as_challenger = judged and refits_as_challenger(entry, cfg, champion, params)
    beaten_by_recipe = not passes and failure.startswith(BEATEN) and as_challenger
    retire = beaten_by_recipe and rule.retires(rel_baseline)
    same_recipe, stand_in = False, math.nan
    if passes and judged:
        same_recipe = key not in (refits or {}) and as_challenger
        refit = (refits or {}).get(key)
        champion_wape = (math.nan if isinstance(refit, str) else refit) if key in (refits or {}) else \
            champion_wape_on_holdout(entry, rows(), cfg, champion, params)
        if (not _present(champion_wape) and is_global(champion.name)
                and not _same_recipe(champion, entry["model_type"], params or {}, cfg)):
            champion_wape = stand_in = nearby_holdout_wape(entry, cfg)
        row["champion_wape"] = champion_wape
    decision, reason = decide(rule, entry["model_type"], entry["status"], entry["accuracy"], entry["mase"],
                              entry["wape"], champion_wape, has_champion, rel_baseline, own_rel, points, by, replaced,
                              same_recipe, pool, no_sale)
    if _present(stand_in):
        reason += (f" (the champion's WAPE on its own holdout, ending {pd.Timestamp(entry['champion_holdout_end']).date()}"
                   f": a global model of another model type or options is not refitted on this one"
                   + (f"; {refits[key]}" if isinstance((refits or {}).get(key), str) else "") + ")")
    elif isinstance((refits or {}).get(key), str) and decision == "promoted" and not _present(champion_wape):
        reason += f" ({refits[key]})"
    elif (decision == "promoted" and not _present(champion_wape) and champion is not None
          and is_global(champion.name) and _same_recipe(champion, entry["model_type"], params or {}, cfg)
          and not _same_batch(entry)):  # every series of a run on the day a series came or left it
        reason = reason.replace(UNSCORED, f"{UNSCORED}: {OTHER_BATCH}")
    if not_retrained:  # no champion: its latest version is the best there is, judged again; said to be older
        reason += (f"; v{int(entry['version'])} is not new: the store's newest training run did not train this "
                   "series (it failed there: mm-assets failures)")
    rescored = not passes and judged and not as_challenger
    if rescored:  # a champion the challenger's own ratio does not judge: re-scored on its holdout
        ratio, weighed = rescored_ratio(entry, rows(), champion, by)
        if rule.retires(weighed):
            retire = True
            reason = reason.replace("; the champion stays", "; " + CHAMPION_RESCORED_RETIRED.format(
                ratio=f"{by} {_ratio_words(weighed)} x the baseline's" + (
                    "" if _same(ratio, weighed) else f", its own holdout {_ratio_words(ratio)} x")))
    if decision == "promoted" and champion is not None and not short and same_fit(
            *metric_column([entry.get("metrics"), entry.get("champion_metrics")], FIT_DIGEST)):
        decision, reason = "kept_champion", f"passes the gate, but {SAME_FIT}"
    if retire and not rescored:
        reason = reason.replace("; the champion stays", f"; {CHAMPION_RETIRED}")
    elif beaten_by_recipe:
        reason = reason.replace("; the champion stays", (
            "; the champion stays: it is the same model type and options, and this is within "
            f"promotion.retire_margin ({rule.retire_margin:g}) of the baseline"), 1)
    return {**row, "decision": decision, "reason": _unfit(decision, reason, short), "retire_champion": retire}


def rescored_ratio(entry: dict, rows: pd.DataFrame, champion, by: str) -> tuple[float, float]:
    """(the champion's own error ratio to the baseline on the challenger's holdout, that ratio weighed with the
    other series as a challenger's is: ``weigh_rel_baseline`` with the pool of the challenger's model type when the
    champion is of it, else its own ratio). NaN when it cannot be scored here."""
    cfg = _state["cfg"]
    ratio, points = champion_against_baseline(entry, rows, cfg, champion, by)
    if math.isnan(ratio):
        return ratio, ratio
    return ratio, weighed_as_challenger(entry, ratio, points, champion.name)


def weighed_as_challenger(entry: dict, ratio: float, points, model_type: str) -> float:
    """An error ratio to the baseline of ``points`` holdout points, weighed with the other series as the manifest
    weighed the challenger's (``weigh_rel_baseline``): with the pool of the challenger's model type when
    ``model_type`` is it, else not at all."""
    pooled = ({model_type: (math.log(float(entry["pool_ratio"])), int(entry["pool_series"]))}
              if model_type == entry["model_type"] and _present(entry.get("pool_ratio")) else {})
    n = float(points) if _present(points) else float(_state["cfg"].horizon)
    weighed = weigh_rel_baseline(np.array([ratio]), np.array([n]), np.array([model_type], dtype=object),
                                 np.array([True]), _state["settings"].promotion.prior_points, pooled)
    return float(weighed[0])


def baseline_was_exact(entry: dict) -> bool:
    """Whether the challenger's ratio to its baseline is undefined because the baseline made no error on the
    holdout while the challenger expected sales there that did not come (every actual 0, the baseline forecast 0:
    a series that stopped selling). Read as "undefined", the challenger was rejected for it and its champion stayed,
    forecasting the old level through the zeros, never retired.

    Only when the challenger's forecasts over the holdout add up to ``STOPPED_EXPECTED_SALES`` or more (at least
    sqrt(points) × its RMSE, which is what its metrics hold): a slow mover forecast 0.2 a day through two weeks
    without a sale is no evidence against its model, and taken as beaten it went back and forth between its model
    and a baseline of 0 with every run of zeros."""
    points, rmse = (metric_column([entry.get("metrics")], name)[0] for name in ("holdout_points", "rmse"))
    return bool(points > 0 and rmse > 0 and math.sqrt(points) * rmse >= STOPPED_EXPECTED_SALES)


def _ratio_words(ratio: float) -> str:
    return "∞ (the baseline was exact)" if math.isinf(ratio) else f"{ratio:.3f}"


def _unfit(decision: str, reason: str, short: str | None) -> str:
    """``reason`` with why the champion serves nothing when it cannot forecast with today's settings (``short``):
    it stays a champion, but its series is on its baseline until a challenger passes."""
    if not short:
        return reason
    if decision != "promoted":
        reason = reason.replace("; the champion stays", "; its baseline serves it until a challenger passes")
    return f"{reason}; {CANNOT_SERVE}: {short}"
