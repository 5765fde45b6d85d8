"""The ``mm-assets`` command line.

  mm-assets generate-demo [--stores N --items N --days N --seed S --end-date D --url URL]
  mm-assets demo          generate the demo source if missing, run the full cycle, print a summary
  mm-assets cycle [--recent N]  run the full cycle on the configured source (bring your own data)
  mm-assets settings      print the effective settings (file + environment), validated
  mm-assets backtest --origins N [--every E --horizon H --gap G --model M[,M...] --no-ingest --out F]
                          rolling-origin backtest of every series; pooled MAPE, WAPE, bias, MASE per model
  mm-assets promotion-report [--min-share S --json F]
                          the gate's rule applied to the registries, no writes; exit 1 below the share (DevOps gate)
  mm-assets failures [--store S]  the recorded series failures with their errors, newest first
  mm-assets retire-partition S    stop processing a store gone from the source (what was stored stays)
  mm-assets bench [--series N --days D --model M --json F]
                          benchmark the daily cycle on generated data
  mm-assets azureml build-job --stores S01,S02 --task train|score --out job.yml
                          the Azure ML pipeline job YAML of one batch, not submitted (az ml job create -f job.yml)
  mm-assets azureml sizing --bench bench/results/X.json [--vcpus N --price P --target-minutes M ...]
                          nodes, mini-batches, wall time and cost per cycle at 10k / 100k / 1M series
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import datetime as dt
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from mm_assets.forecasting.model_types import AUTO
from mm_assets.reporting.words import counted
from mm_assets.settings import ScheduleSettings, SettingsError, load_settings, settings_path
from mm_assets.sql import redact, redact_secrets

if TYPE_CHECKING:
    import pandas as pd


def tenth_of_percent(part: int, whole: int) -> float:
    """``part`` of ``whole`` in per cent, rounded to a tenth (92.86 % is 92.9 %), but never to 100 or 0 unless it
    is all or none: 1,999 of 2,000 is 99.9 %, not "100%"."""
    if not whole:
        return 0.0
    share = round(1000 * part / whole) / 10
    if part < whole:
        share = min(share, 99.9)
    return max(share, 0.1) if part > 0 else share


def _generate(args, settings) -> int:
    from mm_assets.demo.generator import DemoSpec, write_source

    spec = DemoSpec(
        stores=args.stores,
        items=args.items,
        days=args.days,
        seed=args.seed,
        end_date=dt.date.fromisoformat(args.end_date) if args.end_date else DemoSpec().end_date,
    )
    # a price and promotion plan for the forecast window (last day + gap + horizon), as retailers have one
    spec = dataclasses.replace(spec, future_days=args.future_days if args.future_days is not None
                               else _plan_days(settings, spec.end_date))
    url = args.url or settings.source.url
    rows = write_source(spec, url=url, table=settings.source.table, progress=sys.stderr.isatty())
    print(f"demo source: {rows:,} rows ({spec.stores} stores x {spec.items} items, {spec.days} days up to "
          f"{spec.end_date}, plus a price/promotion plan for {spec.future_days} days) written to {url} table "
          f"{settings.source.table}")
    return rows


def _plan_days(settings, end_date: dt.date) -> int:
    """Days of planned price/promotion rows the demo writes by default: the forecast window (gap + horizon
    periods after the last sale). Ingestion keeps rows without sales after the newest sale as the plan: those
    inside an ingested period in its file, later ones in ``raw/plan/current.parquet``."""
    days_per_period = 1 if settings.is_daily else 7
    return (settings.gap + settings.horizon) * days_per_period


def write_rows(frame: pd.DataFrame, out: Path) -> None:
    """Every forecast row of a backtest to ``out``: CSV when its name ends in ``.csv`` (or ``.csv.gz``), else
    Parquet. A file named ``results.csv`` that held Parquet would open as noise in a spreadsheet."""
    if out.name.lower().endswith((".csv", ".csv.gz")):
        frame.to_csv(out, index=False)
    else:
        frame.to_parquet(out, index=False)


def _backtest(settings, args) -> int:
    from mm_assets.assets.evaluation import backtest_settings, unknown_models
    from mm_assets.cycle import run_backtest
    from mm_assets.definitions import build_definitions
    from mm_assets.forecasting.backtest import baseline_reasons, format_pooled, seasonal_naive_note, spacing_hint

    try:
        effective = backtest_settings(settings, args.horizon, args.gap)
    except ValidationError as exc:  # the option named as typed, with pydantic's reason and no link to its docs
        for problem in exc.errors():
            field = ".".join(str(p) for p in problem["loc"]) or "horizon/gap"
            given = {"horizon": args.horizon, "gap": args.gap}.get(field)
            print(f"error: --{field}{'' if given is None else f' {given}'}: "
                  f"{problem['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return 2
    if args.origins < 1:
        print("error: --origins must be >= 1", file=sys.stderr)
        return 2
    if args.every is not None and args.every < 1:
        print("error: --every must be >= 1 period between origins (or left out: the horizon)", file=sys.stderr)
        return 2
    models = [m.strip() for m in (args.model or "").split(",") if m.strip()] or [settings.model.type]
    problem = unknown_models(models)
    if problem:  # before anything is ingested
        print(f"error: --model: {problem}", file=sys.stderr)
        return 2
    instance = _instance()
    _say_other_lake(instance, settings, args.new_lake)
    report = run_backtest(build_definitions(settings), instance, settings, args.origins, args.horizon, args.gap,
                          models, ingest=not args.no_ingest, every=args.every)
    print()
    every = args.every or effective.horizon
    print(f"backtest: {args.origins} origins {every} period{'s' if every != 1 else ''} apart, horizon "
          f"{effective.horizon}, gap {effective.gap} "
          f"({effective.frequency}); models {', '.join(models)}")
    if report.forecasts.empty:
        print("no forecasts were produced", file=sys.stderr)
        return 1
    f = report.forecasts
    ids = list(settings.columns.ids)
    print(f"  {f[ids].drop_duplicates().shape[0]:,} series, {f['origin'].nunique():,} origin dates, "
          f"{len(f):,} forecast rows, {report.failed:,} failed series")
    most = int(f.groupby(ids)["origin"].nunique().max())
    if most < args.origins:
        print(f"  note: at most {most:,} of the {args.origins:,} origins asked per series: an origin {every} "
              f"period{'s' if every != 1 else ''} further back would leave a series fewer than 2 periods to train "
              "on (the longest history sets the limit; --every 1 places more origins on a short history)")
    if report.without_results:
        shown = ", ".join(report.without_results[:10])
        print(f"  {len(report.without_results):,} store partitions without any backtest (each series too short for "
              f"one origin, or failed): {shown}{' ...' if len(report.without_results) > 10 else ''}")
    print("pooled over every series, origin and target period (MAPE excludes zero actuals; bias = "
          "sum(forecast - actual) / sum(actual); >naive / >snaive = share of series with a lower MAE; by model = "
          "share of points the model forecast itself, the rest by its baseline):")
    print(format_pooled(report.pooled))
    if settings.columns.regressors:
        print(f"  note: each forecast used its periods' actual {', '.join(settings.columns.regressors)}, as a plan "
              "known ahead; a served forecast uses the source's planned rows of the horizon, and without them no "
              "promotion and the regular price: unplanned promotions make it lower than these figures (plan them as "
              "future rows)")
    same = seasonal_naive_note(report.pooled, effective.season)
    if same:
        print(same)
    reasons = baseline_reasons(f)
    if reasons:
        print("why points went to the baseline (the earliest origins have the least history: "
              "model.min_train_periods):")
        print("\n".join(reasons))
        hint = spacing_hint(f, ids, every)
        if hint:
            print(hint)
    if AUTO in models:
        chosen = f[f["model_type"] == AUTO].groupby("used_model").size()
        print("auto picked (forecast rows per model): " + ", ".join(f"{m} {n:,}" for m, n in chosen.items()))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_rows(f, out)
        report.pooled.to_csv(out.with_suffix(".pooled.csv"), index=False)
        print(f"wrote {out} and {out.with_suffix('.pooled.csv')}")
    print(f"lake: {redact_secrets(settings.storage.lake)}/backtest/forecasts|series_metrics/<partition>.parquet; "
          f"warehouse table backtest_metrics in {redact(settings.storage.warehouse)}; instance "
          f"{os.environ['DAGSTER_HOME']}")
    return 0 if report.ok else 1


def _source_missing(settings) -> bool:
    """True when there is no demo source yet (no file, table or rows); any other source error is raised."""
    from mm_assets.ingest.source import SourceMissingError, SourceReader

    try:
        SourceReader.from_settings(settings).date_range()
        return False
    except SourceMissingError:
        return True


# the project's instance settings (run queue, retries, its run and event storage), shipped in the package; not a
# dagster.yaml in the checkout's root, where `dagster dev` would warn at every start that it is not the instance's
PROJECT_INSTANCE_YAML = Path(__file__).resolve().parent / "local_instance.yaml"


def _instance():
    """The Dagster instance of ``$DAGSTER_HOME`` (default ``.dagster_home``). A home without a ``dagster.yaml`` gets
    the project's, as ``make`` gives it: without one Dagster would run on its defaults (no run queue, its own
    storage) and the UI would later open the same runs with another configuration."""
    import dagster as dg

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve())))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists() and PROJECT_INSTANCE_YAML.exists():
        (home / "dagster.yaml").write_text(PROJECT_INSTANCE_YAML.read_text())
        print(f"instance {home}: new, with the project's dagster.yaml")
    retries = _HeldRetries()
    logging.getLogger().addFilter(retries)  # dagster-postgres warns of each retry, with its trace, on the root logger
    try:
        instance = dg.DagsterInstance.get()
        instance.get_runs_count()  # the storages are opened at their first use: a wrong password fails here
    except Exception as exc:  # noqa: BLE001 - any storage's or configuration's error: one line that names the file
        reason = f"{type(exc).__name__}: {exc}" + (f"; last: {retries.last}" if retries.last else "")
        reason = redact_secrets(reason).strip().splitlines()[0]
        raise InstanceError(
            f"the Dagster instance of {home / 'dagster.yaml'} cannot be used ({reason}); fix that file or what it "
            "reads from the environment (e.g. DAGSTER_PG_* for a PostgreSQL instance), or point DAGSTER_HOME at "
            "another home") from None
    finally:
        logging.getLogger().removeFilter(retries)
    # closed at exit: SQLite moves a file's write-ahead log into it when its last connection closes. The kept
    # connections of a process that just exits leave each run's events in a -wal file beside an empty .db (a
    # copy of the .db alone has none of them), 3 such files a cycle
    atexit.register(instance.dispose)
    return instance


def _say_other_lake(instance, settings, new_lake: bool = False, record: bool = True) -> None:
    """A note when the instance was last used with another lake; ``OtherProjectError`` when it holds that lake's
    stores and ``new_lake`` (``--new-lake``) does not say this lake replaced it (``instance_project``).
    ``record=False``: that check alone, nothing recorded or said."""
    from mm_assets.assets.partitions import group_partitions
    from mm_assets.instance_project import OtherProjectError, instance_lake_note

    try:
        note = instance_lake_note(instance, settings.storage.lake,
                                  instance.get_dynamic_partitions(group_partitions(settings).name), new_lake, record)
    except OtherProjectError as exc:
        raise InstanceError(str(exc)) from None
    if note and record:
        print(f"note: {note}", file=sys.stderr)


class _HeldRetries(logging.Filter):
    """Holds back the storage's "Retrying failed database connection" warnings while the instance is opened,
    keeping the last one's first line for the error that follows if every retry fails."""

    last = ""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Retrying failed database connection"):
            self.last = message.split(": ", 1)[-1].strip().splitlines()[0]
            return False
        return True


class InstanceError(RuntimeError):
    """The Dagster instance of ``$DAGSTER_HOME`` cannot be opened or read; the message names its file."""


def _rewritten_words(rewritten: int, resized: int) -> str:
    """What the rewritten periods may be: corrections of values, or rows removed or added beside changed values
    (``resized`` of them: a store or series gone from the source, or a reload; rows of sales added beside unchanged
    ones are late sales, not rewrites)."""
    added = "rows removed, or added beside changed values: a store or series gone from the source, or a reload?"
    if not resized:
        return "corrections?"
    if resized == rewritten:
        return f"each with {added}"
    return f"{resized:,} with {added} the others corrections?"


def _run_cycle(settings, recent: int | None = None, new_lake: bool = False) -> int:
    from mm_assets.cycle import run_cycle, undated_words
    from mm_assets.definitions import build_definitions
    from mm_assets.preflight import check_stores
    from mm_assets.reporting.changes import WORSE_BY, holdouts_clause

    instance = _instance()
    _say_other_lake(instance, settings, new_lake, record=False)  # another project's instance: nothing written
    check_stores(settings)  # before the instance records the lake as its own: a mistyped one is refused, not kept
    _say_other_lake(instance, settings, new_lake)
    report = run_cycle(build_definitions(settings), instance, settings, recent=recent, stores_checked=True)
    s = report.summary
    print()
    print("=" * 72)
    print("mm-assets daily cycle summary")
    print("=" * 72)
    failed = [f"{job} [{label}]" for job, label, success, _ in report.runs if not success]
    if report.store_down and report.stopped == "ingest_job":
        print(f"  THE CYCLE STOPPED after ingest_job failed: {report.store_down}. Nothing was trained or published: "
              "every store keeps what it had. Run the cycle again once it is fixed.")
    elif report.store_down:
        print(f"  THE CYCLE STOPPED after {report.stopped} failed: {report.store_down}. The stores of the runs before "
              "it have this cycle's results; the others keep what they had. Run the cycle again once it is fixed.")
    elif report.stopped:
        print(f"  THE CYCLE STOPPED: {report.stopped} failed (the reason is above); nothing after it ran. The figures "
              "below are what was stored before, unchanged.")
    elif failed:
        print(f"  FAILED RUNS: {', '.join(failed[:5])}{' ...' if len(failed) > 5 else ''} (the reasons are above); "
              "the stores of a failed run keep what they had before.")
    if s:
        acc = s["median_accuracy"]
        if report.stopped == "ingest_job":  # nothing trained: the figures are of each store's newest run before
            print(f"  series trained             {0:>8,}  this cycle; {_with_model(s)} "
                  "from earlier runs (the figures below are of those runs)")
        else:
            print(f"  series trained             {s['trained_this_cycle']:>8,}  this cycle ({s['trained']:,} with model "
                  f"type {settings.model.type}, {s['fallback']:,} fell back to their baseline: too little history); "
                  f"{_with_model(s)}"
                  + (f" ({s['series_not_retrained']:,} not trained by their store's newest run: {_left_words(s)})"
                     if s.get("series_not_retrained") else ""))
        print(f"  failed series (recorded)   {s['failed_series']:>8,}"
              + (f"  ({s['failed_keeping_older']:,} keep the version of an earlier run)"
                 if s.get("failed_keeping_older") else ""))
        print(f"  median holdout accuracy    {'     n/a' if math.isnan(acc) else f'{acc:8.3f}'}  (1 - WAPE of the "
              f"{s.get('accuracy_series', 0):,} series trained with {settings.model.type} that had sales in their "
              f"holdout: without, WAPE is undefined; {_holdout_words(settings)})")
        kept_after = s.get("rejected_keeping_champion", 0)
        print(f"  promotion gate (last run)  {s['promoted']:>8,}  promoted, {s['kept_champion']:,} kept champion, "
              f"{s['rejected']:,} rejected"
              + (f" ({kept_after:,} of them keep their champion, {s['rejected'] - kept_after:,} are served by their "
                 "baseline)" if kept_after else ""))
        if s.get("kept_same_fit"):
            print(f"    kept: the champion's own fit                     {s['kept_same_fit']:>6,}  the same rows, model "
                  "type, options and settings (a run again over unchanged data): no production version written")
        examples = s.get("rejected_examples", {})
        for reason, count in s.get("rejected_by_reason", {}).items():
            print(f"    rejected: {reason:<44} {count:>6,}{_for_example(examples.get(reason), count)}")
        if s.get("champions_retired"):
            print(f"    champions retired                                {s['champions_retired']:>6,}  re-scored on "
                  "their rejected challenger's holdout (or their model type and options refitted as the challenger "
                  "was), they do not beat the baseline: the baseline serves them until a challenger passes")
        idle, left = s.get("champions_serving_nothing", 0), s.get("champions_left_envelope", 0)
        why = ([f"{left:,} whose forecasts left the sanity envelope, replaced by their baseline's (check "
                "envelope_within)"] if left else []) + (
            [f"{idle - left:,} whose series' newest forecasts are their baseline's, e.g. a champion that cannot "
             "forecast under the current settings (check champions_forecast)"] if idle > left else [])
        print(f"  champions in production    {s['champions']:>8,}"
              + (f"  ({idle:,} of them serve nothing now: {'; '.join(why)})" if idle else ""))
        if s.get("worse_than_previous"):
            print(f"  worse than the previous    {s['worse_than_previous']:>8,}  series whose holdout WAPE rose by more "
                  f"than {WORSE_BY * 100:.0f} points against their previous version (the newest trained on earlier data, "
                  "else the one before), e.g. "
                  f"{'; '.join(s['worst_rises'][:3])} (trained_models: worse_than_previous); "
                  f"{s.get('better_than_previous', 0):,} fell by as much. The rises: "
                  + holdouts_clause(s['worse_than_previous'], s.get('worse_on_the_same_holdout', 0),
                                    s.get('worse_on_harder_holdouts', 0), s.get('better_than_previous', 0)))
        real = s["series_with_forecast"] - s["served_by_baseline"]
        share = tenth_of_percent(real, s["series_with_forecast"])
        print(f"  forecasts in the warehouse {s['prediction_rows']:>8,}  rows of the newest forecast of each of "
              f"{s['series_with_forecast']:,} series ({real:,} by a model ({share:g}%), {s['served_by_baseline']:,} by "
              "their baseline)")
        if settings.columns.regressors and report.periods_forecast:
            planned = tenth_of_percent(report.periods_with_plan, report.periods_forecast)
            print(f"    periods with a plan      {report.periods_with_plan:>8,}  of {report.periods_forecast:,} forecast "
                  f"periods ({planned:g}%) had plan rows of {', '.join(settings.columns.regressors)}; the others use "
                  "the defaults: a flag 0, a share its usual level, a price its regular one, any other its last value (docs/models.md)")
        gone = s.get("stores_without_rows") or {}
        if gone:
            named = ", ".join(f"{k} ({n:,} series, origin {origin})" for k, (n, origin) in list(gone.items())[:5])
            print(f"    of stores without rows   {sum(n for n, _ in gone.values()):>8,}  series of {len(gone):,} "
                  f"store{'s' if len(gone) > 1 else ''} without rows this cycle: {named}"
                  f"{' ...' if len(gone) > 5 else ''}. Their forecasts are from before, not this cycle's "
                  "(every_partition_has_rows says why: a store gone from the source, retire it with mm-assets "
                  "retire-partition <key>; one whose series are all held back, mend the source)")
        if s.get("stale_series"):
            gone, asleep = s.get("stale_gone", 0), s.get("stale_dormant", 0)
            where = (["check series_reach_data_end"] if gone + asleep < s["stale_series"] else []) + (
                [f"{gone:,} of them gone from the source, named under series trained: no check sees a series no "
                 "longer in the data"] if gone else []) + (
                [f"{asleep:,} of them dormant: forecasts published before they went dormant"] if asleep else [])
            print(f"    from an old origin       {s['stale_series']:>8,}  series whose data stop more than "
                  f"{settings.max_normal_gap} periods before the newest ({'; '.join(where)})")
        if s.get("recent_origin_series"):
            shown = s.get("recent_origin_examples") or []
            print(f"    from a recent origin     {s['recent_origin_series']:>8,}  series forecast from a period before "
                  f"the newest ({s['newest_origin']}){', e.g. ' + '; '.join(shown) if shown else ''}, at most "
                  f"{settings.max_normal_gap} before: no row in the newest "
                  "periods (a closed day, a missing period, held back for bad rows, or a newest value held as a unit slip: "
                  "values_plausible), normal within ingest.max_normal_gap; per store: batch_predictions' "
                  "series_from_earlier_origin")
        dormant = s.get("series_dormant") or []
        if dormant:
            print(f"    dormant                  {len(dormant):>8,}  series without a row in the last "
                  f"{settings.dormant_after} periods before their store's newest ({', '.join(dormant[:3])}"
                  f"{' ...' if len(dormant) > 3 else ''}): discontinued? Not trained, forecast or published until "
                  "their next row, which brings them back whole; the lake keeps their rows (ingest.dormant_after; "
                  "check series_reach_data_end)")
        behind = s.get("stores_behind") or {}
        if behind:
            print(f"    stores behind            {len(behind):>8,}  {_behind_words(behind, report.failed_checks)}")
        kept = (f"those of the last {settings.storage.model_retention_days} days, each series' latest and the "
                "champions: storage.model_retention_days" if settings.storage.model_retention_days is not None
                else "every run's")
        print(f"  model versions registered  {s['model_versions_total']:>8,}  ({kept})")
        over = s.get("stores_mostly_on_baseline", [])
        named = f"{', '.join(over[:10])}{' ...' if len(over) > 10 else ''}  " if over else ""
        print(f"  stores mostly on baseline  {len(over):>8,}  {named}(check served_by_model)")
        if s.get("realized_points"):
            print(f"  realised vs baseline       {s['realized_mase_vs_baseline']:>8.3f}  (the champions' published "
                  "forecasts' absolute error over their baselines' on the same points, below 1 where the champions "
                  f"did better; {s['realized_points']:,} points with actuals in the newest "
                  f"{s['realized_window_periods']} periods: operations.accuracy_window)")
    counts = report.failed_check_counts()
    print(f"  checks not passed          {sum(counts.values()):>8,}  "
          + (", ".join(f"{name} ({severity}) x{n}" for (name, severity), n in counts.items())
             or ("(every check passed)" if report.ok else "(the failed runs' checks did not run)"))
          + ("  (the run lines above say why)" if counts else ""))
    print(f"  periods ingested           {report.periods:>8,}" + ("  (ingest failed)" if report.stopped == "ingest_job" else ""))
    if report.behind_today:
        print(f"    behind today             {report.behind_today}")
    if report.in_progress:
        print(f"    in progress              {report.in_progress}")
    if report.undated_rows:
        print(f"    without a date           {undated_words(settings, report.undated_rows)}")
    if report.rewritten:
        shown = ", ".join(report.rewritten[:5]) + (" ..." if len(report.rewritten) > 5 else "")
        left = len(s.get("series_gone", [])) if s else 0
        print(f"    rewritten                {len(report.rewritten):>8,}  periods already ingested whose rows changed in "
              f"the source: {shown} ({_rewritten_words(len(report.rewritten), len(report.resized))}; their forecasts "
              "are judged again"
              + (f"; or the rows of the {left:,} series gone from the source, named under series trained" if left
                 else "") + ")")
    if report.late_sales:
        shown = ", ".join(report.late_sales[:5]) + (" ..." if len(report.late_sales) > 5 else "")
        print(f"    late sales               {len(report.late_sales):>8,}  periods already ingested that got sales they "
              f"lacked, no stored one changed: {shown} (a store that reported late, one new to the source with its "
              "history, or a series held back for bad rows whose rows were mended; no corrections; their forecasts "
              "are judged with them)")
    if len(report.first_sales) > 1:  # one is every day's: the newest planned period got its sales
        shown = ", ".join(report.first_sales[:5]) + (" ..." if len(report.first_sales) > 5 else "")
        print(f"    planned periods sold     {len(report.first_sales):>8,}  periods the lake held as plan only that got "
              f"their sales in this cycle: {shown} (a feed catching up after an outage; their forecasts are judged "
              "with them)")
    if report.rebuilt:
        shown = ", ".join(report.rebuilt[:5]) + (" ..." if len(report.rebuilt) > 5 else "")
        print(f"    rebuilt                  {len(report.rebuilt):>8,}  period files in the lake that could not be read, "
              f"written again from the source: {shown} (a series held back keeps no rows of them until it is "
              "ingested again)")
    if report.reshaped:
        print(f"    new columns              {len(report.reshaped):>8,}  periods already ingested, written again with the "
              "columns now configured (their actuals did not change: no corrections)")
    if report.held.count:
        print(held_back_summary(report.held))
    if report.spellings:
        print(f"    ids written two ways     {report.spellings}")
    if report.merged:
        print(f"    duplicate rows           {report.merged}")
    what = f"(hash buckets of {settings.partition.column})" if settings.partition.buckets else ""
    print(f"  store partitions           {report.partitions:>8,}  {what}".rstrip())
    print(f"  runs                       {len(report.runs):>8,}  ({sum(1 for r in report.runs if not r[2])} failed)")
    if report.history_bytes is not None:
        print(f"  Dagster run history        {report.history_bytes / 2**20:>8,.0f}  MB on disk; "
              + (report.pruned or "every run kept (storage.run_retention_days deletes ended runs whose partitions "
                 "and checks were all recorded again since)"))
    print()
    for line in where_lines(settings, os.environ["DAGSTER_HOME"]):
        print(line)
    return 0 if report.ok else 1


def held_back_summary(held) -> str:
    """The summary's line of the series the ingest held back (a ``cycle.HeldBack``), the first with its problem."""
    from mm_assets.ids import shortened

    named = ", ".join(shortened(name) for name in held.series[:5]) + (" ..." if held.count > 5 else "")
    return (f"    series held back         {held.count:>8,}  for bad rows in the source ({named}). {held.by_problem}. "
            "Those stored before are forecast from their stored rows until it is fixed; the next cycle reads them "
            f"again (checks no_series_held_back of their stores and no_rows_held_back of raw_sales; "
            f"raw/held/current.parquet lists them all). {held.problem}")


def where_lines(settings, dagster_home: str) -> list[str]:
    """The summary's last lines: where everything is, passwords and keys hidden, and how to open the UI on it."""
    storage = redacted_settings(settings)["storage"]
    return [f"  lake        {storage['lake']}",
            f"  registry    {storage['registry']}",
            f"  production  {storage['production_registry']}  (champions, promotion_decisions)",
            f"  warehouse   {storage['warehouse']}  (current_forecasts, forecast_predictions, model_metrics, "
            "promotion_decisions, forecast_accuracy, publish_log)",
            f"  instance    {dagster_home}",
            "",
            f"Open the Dagster UI on these runs:  {ui_command(dagster_home)}   (then http://127.0.0.1:3000)"]


def ui_command(dagster_home: str) -> str:
    """The command that opens the UI on ``dagster_home``: ``make ui`` opens the project's own instance only (the
    Makefile sets its ``.dagster_home``), so another instance is named in the command; a settings file named by
    ``MM_ASSETS_SETTINGS`` is named too (the UI loads the definitions of the settings in force, and a new shell
    has none). Either way it is ``dagster dev`` through ``mm_assets.dev_ui``, which SIGTERM and SIGINT stop (started
    in the background, ``dagster dev`` alone ignores both)."""
    named = os.environ.get("MM_ASSETS_SETTINGS")
    settings = f"MM_ASSETS_SETTINGS={Path(named).resolve()} " if named else ""
    if Path(dagster_home).resolve() == (Path.cwd() / ".dagster_home").resolve() and Path("Makefile").exists():
        return f"{settings}make ui"
    return (f"{settings}DAGSTER_HOME={dagster_home} {sys.executable} -m mm_assets.dev_ui -m mm_assets.definitions "
            "-h 127.0.0.1 -p 3000")


def redacted_settings(settings) -> dict:
    """The settings as ``mm-assets settings`` prints them: every database URL's password and every secret in the
    lake's URL hidden (what is printed ends up in logs, pipelines and tickets)."""
    data = settings.model_dump()
    data["source"]["url"] = redact(data["source"]["url"])
    for name in ("registry", "production_registry", "warehouse"):
        data["storage"][name] = redact(data["storage"][name])
    data["storage"]["lake"] = redact_secrets(data["storage"]["lake"])
    return data


def _prune_runs(settings, days: float | None, dry_run: bool) -> int:
    """Delete the ended runs that hold no partition's or check's newest record (``mm_assets/run_retention.py``)."""
    from mm_assets.run_retention import history_bytes, prune_runs

    days = days if days is not None else settings.storage.run_retention_days
    if days is None or days < 1:
        print("mm-assets: say how old a run must be: --older-than DAYS (1 or more), or set "
              "storage.run_retention_days", file=sys.stderr)
        return 2
    instance = _instance()
    before = history_bytes(instance)
    result = prune_runs(instance, days, dry_run=dry_run)
    if result.unsupported:
        print(f"error: {result.words(days)}", file=sys.stderr)
        return 2
    print(result.words(days, dry_run)
          + (f"; {result.check_rows_deleted:,} check records of theirs deleted" if result.check_rows_deleted else ""))
    after = history_bytes(instance)
    if before is not None and after is not None and not dry_run:
        print(f"run history on disk: {before / 2**20:,.0f} -> {after / 2**20:,.0f} MB (the event index keeps the space "
              "of deleted records for new ones: it stops growing rather than shrinks)")
    return 0


def _retire_partitions(settings, keys: list[str]) -> int:
    """Stop processing store partitions that are gone from the source; what was stored about them stays."""
    from mm_assets.assets.partitions import group_partitions
    from mm_assets.automation import runs_naming
    from mm_assets.ingest.retiring import PeriodsUnreadable, still_in_the_source
    from mm_assets.lake import Lake
    from mm_assets.warehouse import Warehouse

    instance = _instance()
    name = group_partitions(settings).name
    if _unknown_stores(settings, keys, instance):
        return 2
    try:
        selling = still_in_the_source(Lake(settings.storage.lake), keys)
    except PeriodsUnreadable as exc:
        print(f"error: cannot retire {', '.join(keys)}: {exc}", file=sys.stderr)
        return 2
    if selling:
        for key, where in selling.items():
            rows = (f"the rows of the {settings.partition.column} values hashed into it" if settings.partition.buckets
                    else f"its rows (e.g. source.query ... WHERE {settings.partition.column} <> {_sql_text(key)})")
            print(f"error: store partition {key} still has rows in {where}: the next ingest would register it again. "
                  f"Leave {rows} out of the source first, run a cycle, then retire it", file=sys.stderr)
        return 2
    busy = runs_naming(instance, instance.get_dynamic_partitions(name), keys)
    if busy:
        shown = "; ".join(f"run {run.run_id[:8]} ({run.job_name}, {run.status.value.lower()}) covers "
                          f"{', '.join(covered)}" for run, covered in busy[:5])
        print(f"error: cannot retire {', '.join(keys)} now: {shown}. A run checks its stores when it starts, and one "
              "whose range names a retired store fails: wait until they end (or terminate them in the Dagster UI), "
              "then retire it", file=sys.stderr)
        return 2
    try:  # first: a warehouse that cannot be written leaves the stores as they were
        Warehouse(settings.storage.warehouse, settings.columns.ids).record_retired(keys)
    except Exception as exc:  # noqa: BLE001 - any database's error: nothing retired
        print(f"error: cannot retire {', '.join(keys)}: storage.warehouse {redact(settings.storage.warehouse)} "
              f"cannot be written ({type(exc).__name__}: {exc}); nothing was changed", file=sys.stderr)
        return 2
    for key in keys:
        instance.delete_dynamic_partition(name, key)
        print(f"retired store partition {key}: no longer trained, promoted, scored or published; its models, "
              "champions and published forecasts stay in the registries and the warehouse (its table "
              "retired_partitions names it, for BI to leave it out)")
    return 0


def _failures(settings, args) -> int:
    """The newest recorded series failures (training, the gate, scoring), newest first: what the checks point at."""
    import pandas as pd

    from mm_assets.registry import ModelRegistry

    registry = ModelRegistry(settings.storage.registry)
    failures = registry.failures(args.store or None)
    held = _held_line(settings, args.store, args.limit)
    if failures.empty:
        unknown = _unknown_stores(settings, args.store or [])
        if unknown:
            return 2
        print("no series failures recorded" + (f" for {', '.join(args.store)}" if args.store else ""))
        if held:
            print(held)
        return 0
    failures = failures.sort_values(["failed_at", "id"], ascending=False)
    shown = failures.head(args.limit)
    # a training failure is over once a model of its series was registered after it
    trained_at = registry.latest(sorted(set(shown["partition_key"]))).set_index("series_key")["trained_at"]
    since = pd.to_datetime(shown["series_key"].map(trained_at))
    resolved = (shown["task"] == "train") & since.notna() & (since > pd.to_datetime(shown["failed_at"]))
    print(f"{len(failures)} series failures recorded, newest first ({len(shown)} shown, {int(resolved.sum())} of "
          "them trained since; a series is retried on the next run):")
    for row, done, when in zip(shown.itertuples(index=False), resolved, since, strict=True):
        message = str(row.error_message or "").strip().splitlines()
        print(f"  {_utc_time(row.failed_at)}  {row.partition_key}  {row.series_key}  {row.task}  "
              f"after {row.attempts} attempt(s)  run {str(row.run_id)[:8]}  {row.error_type}: "
              f"{(message[0] if message else '')[:160]}" + (f"  [resolved: trained {_utc_time(when)}]" if done else ""))
    if held:
        print(held)
    return 0


def _holdout_words(settings) -> str:
    """What a series' holdout is: its newest periods, in windows of the horizon when there are several."""
    from mm_assets.forecasting.series import SeriesConfig

    horizon, windows = settings.horizon, SeriesConfig.from_settings(settings).holdout_windows
    unit = "days" if settings.frequency == "D" else "weeks"
    if windows == 1:
        return f"the holdout: each series' newest {horizon} {unit}"
    return (f"the holdout: each series' newest {windows * horizon} {unit}, {windows} windows of {horizon} forecast "
            "from their own origins, fewer for a short history (promotion.holdout_periods)")


def _with_model(summary: dict) -> str:
    n = summary["series_with_model"]
    return f"{counted(n, 'series', 'series')} {'has' if n == 1 else 'have'} a model"


def _for_example(series: list[str] | None, count: int) -> str:
    """The first series a rule stopped, after its count: "  e.g. T/4, T/5, T/7" (or all of them, when so few)."""
    if not series:
        return ""
    return f"  {'e.g. ' if count > len(series) else ''}{', '.join(series)}"


def _behind_words(behind: dict[str, str], failed_checks) -> str:
    """The stores behind the others (store: its newest origin), and why: a store whose newest rows a check of this
    cycle left out (``values_plausible``) or held back (``no_series_held_back``) is named with that check, since its
    feed did not stop; of the others, the source brought no new rows."""
    left_out = {c.partition: c.name for c in failed_checks
                if c.partition in behind and c.name in ("values_plausible", "no_series_held_back")}
    named = ", ".join(f"{k} (last origin {v}{'; ' + left_out[k] if k in left_out else ''})"
                      for k, v in list(behind.items())[:5])
    return (f"{named}{' ...' if len(behind) > 5 else ''}: no new rows in the source for them (closed, renamed, or a "
            "feed that stopped?)" + (", or, where a check is named, their newest rows were left out or held back by "
                                     "it (the check lines above)" if left_out else ""))


def _left_words(summary: dict) -> str:
    """The series a store's newest training run did not train, named: gone from the source, or failed there."""
    gone = summary.get("series_gone", [])
    asleep = summary.get("dormant_with_model", 0)
    failed = summary["series_not_retrained"] - len(gone) - asleep
    parts = []
    if gone:
        parts.append(f"{len(gone):,} gone from the source ({', '.join(gone[:3])}{' ...' if len(gone) > 3 else ''}: "
                     "their champions serve nothing; their judged forecasts stay in forecast_accuracy)")
    if asleep:
        parts.append(f"{asleep:,} dormant (below)")
    if failed:
        parts.append(f"{failed:,} failed there (mm-assets failures)")
    return "; ".join(parts)


def _unknown_stores(settings, stores: list[str], instance=None) -> list[str]:
    """The ``stores`` that are no registered store partition, said on stderr with the registered ones: "no
    failures" for a mistyped store (or a store value where partitions are hash buckets) would be a false all-clear."""
    from mm_assets.assets.partitions import group_partitions

    if not stores:
        return []
    known = set((instance or _instance()).get_dynamic_partitions(group_partitions(settings).name))
    unknown = [k for k in stores if k not in known]
    if unknown:
        buckets = (f"; partitions are hash buckets of {settings.partition.column} (partition.buckets)"
                   if settings.partition.buckets else "")
        print(f"error: not registered store partitions: {', '.join(unknown)} (registered: "
              f"{', '.join(sorted(known)[:20])}{' ...' if len(known) > 20 else ''}{buckets})", file=sys.stderr)
    return unknown


def _held_line(settings, stores: list[str] | None, limit: int = 20) -> str | None:
    """The series the ingest holds back for bad rows (not failures: they never reached training), each with its
    first bad row and problem (at most ``limit``), so that an operator looking for what went wrong finds them and
    why here too; None when there are none."""
    import pandas as pd

    from mm_assets.ingest.held import HELD_FILE, held_series
    from mm_assets.lake import Lake

    if "://" not in settings.storage.lake and not os.path.isdir(settings.storage.lake):
        return None  # no local lake yet: not made by a question
    try:
        held = held_series(Lake(settings.storage.lake))
    except Exception:  # noqa: BLE001 - the failures are the answer asked for; the held list is an aside
        return None
    if stores:
        held = held[held["store"].isin(stores)]
    if held.empty:
        return None
    lines = [f"and {len(held):,} series held back by the ingest for bad rows in the source (their rows of "
             f"{held['held_from'].min()} .. {held['held_to'].max()} are not in the lake until the source is fixed; "
             f"also in the lake's {'/'.join(HELD_FILE)}, the raw_sales run's held_back metadata and the "
             "no_series_held_back check):"]
    for row in held.head(limit).itertuples(index=False):
        rows = int(row.bad_rows) if pd.notna(row.bad_rows) else 0
        lines.append(f"  {row.series}  {rows:,} bad row{'s' if rows != 1 else ''} from {row.first_date}: "
                     f"{str(row.problem)[:300]}")
    if len(held) > limit:
        lines.append(f"  ... and {len(held) - limit:,} more (--limit)")
    return "\n".join(lines)


def _utc_time(value) -> str:
    """A stored time as ``YYYY-MM-DD HH:MM:SS`` (UTC)."""
    import pandas as pd

    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def _sql_text(value: str) -> str:
    """``value`` as an SQL string literal, its quotes doubled (a store O'HARE: 'O''HARE')."""
    return "'" + value.replace("'", "''") + "'"


def _promotion_report(settings, args) -> int:
    from mm_assets.registry.promotion import GateRule
    from mm_assets.registry.report import promotion_report
    from mm_assets.warehouse import Warehouse

    if args.min_share is not None and not 0.0 <= args.min_share <= 1.0:  # 80 for 80 % would fail every pipeline
        print(f"error: --min-share {args.min_share:g}: a share of the series from 0 to 1 (e.g. 0.80 for 80 %)",
              file=sys.stderr)
        return 2
    report = promotion_report(settings, Warehouse(settings.storage.warehouse, settings.columns.ids,
                                                  read_only=True).retired_partitions())
    if args.min_share is not None:
        report["min_share"] = args.min_share
    rule = report["rule"]
    print(f"promotion rule: {GateRule(**rule).describe()}")
    retired = report["retired_partitions_left_out"]
    print(f"  series                              {report['series']:>8,}" + (
        f"  ({retired:,} retired store partition{'s' if retired != 1 else ''} left out: the warehouse's "
        "retired_partitions)" if retired
        else ""))
    print(f"  challengers passing the rules       {report['challengers_passing_rules']:>8,}")
    notes = [f"{report['champions_below_floors']:,} promoted under lower floors: they serve, but do not count"
             ] if report["champions_below_floors"] else []
    if report["champions_unfit_for_settings"]:
        notes.append(f"{report['champions_unfit_for_settings']:,} cannot forecast with these settings (the newest gate "
                     "run's promotion_decisions say why): their baseline serves, and they do not count")
    print(f"  champions in production             {report['champions']:>8,}" + (f"  ({'; '.join(notes)})" if notes else ""))
    print(f"  series with a gate-passing model    {report['series_with_gate_passing_model']:>8,}  "
          f"({report['share']:.1%}; required {report['min_share']:.1%})")
    for reason, count in report["failures_by_rule"].items():
        print(f"  rejected: {reason:<40} {count:>6,}{_for_example(report['failure_examples'].get(reason), count)}")
    print("  (each series' latest challenger judged again with every series of its model type, where the gate weighed\n"
          "   it with its own run's series and against its champion: the gate's decisions are in promotion_decisions)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    if not report["series"]:  # a first deployment: no model was trained yet
        print("gate: PASS (no series in the registries yet: nothing to judge; check storage.registry and "
              "storage.production_registry if there should be)")
        return 0
    ok = report["share"] >= report["min_share"]
    print("gate: PASS" if ok else "gate: FAIL")
    return 0 if ok else 1


def _azureml_sizing(args) -> int:
    from mm_assets.parallel.azureml.sizing import Cluster, measured_from_bench, sizing_table

    try:
        measured = measured_from_bench(args.bench)
        sizes = [int(v) for v in args.series.split(",") if v.strip()]
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: --bench/--series: {exc}", file=sys.stderr)
        return 2
    wrong = [f"{flag} {value:g}: {need}" for flag, value, bad, need in (
        ("--vcpus", args.vcpus, args.vcpus < 1, "at least 1 (vCPUs of one node)"),
        ("--price", args.price, args.price < 0, "0 or more (your price per node-hour)"),
        ("--target-minutes", args.target_minutes, args.target_minutes <= 0, "more than 0"),
        ("--startup-s", args.startup_s, args.startup_s < 0, "0 or more"),
        ("--overhead-s", args.overhead_s, args.overhead_s < 0, "0 or more"),
        ("--rows-per-run", args.rows_per_run, args.rows_per_run < 1, "at least 1 (schedule.rows_per_run)"),
        *(("--series", n, n < 1, "each size at least 1 series") for n in sizes),
    ) if bad]
    if wrong or not sizes:
        print(f"error: {'; '.join(wrong) or '--series: no size given (e.g. 10000,100000)'}", file=sys.stderr)
        return 2
    cluster = Cluster(vcpus_per_node=args.vcpus, node_hour_price=args.price, startup_s=args.startup_s,
                      overhead_per_mini_batch_s=args.overhead_s)
    print(sizing_table(measured, cluster, sizes, target_wall_s=args.target_minutes * 60,
                       rows_per_run=args.rows_per_run))
    return 0


def _azureml_build_job(settings, args) -> int:
    from mm_assets.parallel.azureml.build import BuildJobError, build_job_yaml
    from mm_assets.parallel.azureml.mltable import StagingError

    try:
        built = build_job_yaml(settings, args.stores.split(","), args.task, args.out)
    except (BuildJobError, StagingError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {built.path} ({args.task}: {built.series} series in {built.staged.mini_batches} mini-batches, "
          f"partitioned by {list(built.staged.partition_keys)}), code folder "
          f"{built.path.parent / (built.path.stem + '-code')}")
    print(f"staged input: {built.staged.folder} in the lake {settings.storage.lake} (kept for the job; once it "
          "has run, or if it is never submitted, delete that folder: a dry run's copy is not removed by itself)")
    for note in built.notes:
        print(f"note: {note}")
    print(f"submit: az ml job create -f {built.path} -g <resource group> -w <workspace>")
    return 0


def _quiet_library_warnings() -> None:
    """Dagster's own deprecation notices (raised inside the library, nothing a user can change) are noise on a
    terminal; our beta APIs are silenced where they are used."""
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"dagster(\.|$)")


def _interruptible(command, *args) -> int:
    """Run a command of many Dagster runs so that Ctrl-C or SIGTERM stops it, not only the run in progress."""
    try:
        return command(*args)
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted: {exc or 'stopped by the user'}. Nothing after it ran; the stores of that run keep "
              "what they had before it, and the next cycle runs them again.", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # the reader went away (``mm-assets settings | head``): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0


def _main(argv: list[str] | None = None) -> int:
    _quiet_library_warnings()
    parser = argparse.ArgumentParser(prog="mm-assets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate-demo", help="write the demo source database")
    demo = sub.add_parser("demo", help="demo data + full cycle + summary")
    for p in (gen, demo):
        p.add_argument("--stores", type=int, default=10)
        p.add_argument("--items", type=int, default=20)
        p.add_argument("--days", type=int, default=1095)
        p.add_argument("--seed", type=int, default=42)
        p.add_argument("--end-date", default=None, help="last day of sales (ISO date); default fixed")
        p.add_argument("--url", default=None, help="SQLAlchemy URL (default: source.url)")
        p.add_argument("--regenerate", action="store_true", help="rewrite the demo source even if present")
        p.add_argument("--future-days", type=int, default=None,
                       help="days of planned price/promo rows after the last sale (default: (gap + horizon) "
                       "periods)")
    cycle = sub.add_parser("cycle", help="run the full daily cycle on the configured source")
    cycle.add_argument("--recent", type=int, default=None, metavar="N",
                       help="ingest only the newest N periods (and what the lake lacks before them) instead of "
                            "every period; corrections of older periods wait for a cycle without it")
    new_lake = ("this lake replaced the one the Dagster instance was last used with, for good: record it (without "
                "it, an instance holding another lake's stores is refused)")
    cycle.add_argument("--new-lake", action="store_true", help=new_lake)
    demo.add_argument("--new-lake", action="store_true", help=new_lake)
    report = sub.add_parser("promotion-report", help="gate report; exit 1 below promotion.report_min_promoted_share")
    report.add_argument("--min-share", type=float, default=None, help="override the share required")
    report.add_argument("--json", default=None, help="also write the report as JSON to this file")
    sub.add_parser("settings", help="print the effective settings")
    failures = sub.add_parser("failures", help="the newest recorded series failures with their errors")
    failures.add_argument("--store", nargs="*", help="only these store partitions")
    failures.add_argument("--limit", type=int, default=50, help="how many to show (newest first)")
    retire = sub.add_parser("retire-partition", help="stop processing store partitions gone from the source")
    retire.add_argument("keys", nargs="+", help="store partition keys, e.g. S03")
    prune = sub.add_parser("prune-runs", help="delete ended Dagster runs that no partition or check needs any more")
    prune.add_argument("--older-than", type=float, default=None, metavar="DAYS",
                       help="runs that ended more than this many days ago (default: storage.run_retention_days)")
    prune.add_argument("--dry-run", action="store_true", help="count them, delete nothing")
    backtest = sub.add_parser("backtest", help="rolling-origin backtest of every series (pooled metrics per model)")
    backtest.add_argument("--origins", type=int, default=5, help="rolling origins per series")
    backtest.add_argument("--every", type=int, default=None,
                          help="periods between origins (default: the horizon, windows that do not overlap; 1: "
                               "an origin every period, for a long horizon on a short history)")
    backtest.add_argument("--horizon", type=int, default=None, help="periods scored per origin (default: horizon)")
    backtest.add_argument("--gap", type=int, default=None, help="lead time in periods (default: gap)")
    backtest.add_argument("--model", default=None,
                          help="model type(s), comma-separated: lightgbm, linear, ets, prophet, baseline, seasonal_naive, auto "
                          "(default: model.type)")
    backtest.add_argument("--no-ingest", action="store_true",
                          help="use the store partitions already ingested instead of reading the source again")
    backtest.add_argument("--out", default=None, help="also write every forecast row to this file: CSV when it ends in .csv, else Parquet")
    backtest.add_argument("--new-lake", action="store_true", help=new_lake)
    bench = sub.add_parser("bench", help="benchmark the daily cycle on generated data; own settings")
    bench.add_argument("--series", type=int, default=10_000, help="store-item series (default 10,000)")
    bench.add_argument("--days", type=int, default=4_000, help="days of daily history (default 4,000)")
    bench.add_argument("--model", choices=["linear", "lightgbm", "prophet", "seasonal_naive"], default="linear")
    bench.add_argument("--json", default=None, help="results file (default bench/results/<UTC time>.json)")
    bench.add_argument("--workdir", default=None, help="work directory (default a fresh /tmp/mm-bench-*)")
    bench.add_argument("--keep", action="store_true", help="keep the work directory (source, lake, instance)")
    bench.add_argument("--baseline-series", type=int, default=200, help="series of the pandas baseline (0: none)")
    bench.add_argument("--seed", type=int, default=42)
    bench.add_argument("--no-peers", action="store_true", help="skip statsforecast / mlforecast (.venv-peers)")
    azureml = sub.add_parser("azureml", help="the azureml runner's tools").add_subparsers(dest="azureml_command",
                                                                                      required=True)
    build_job = azureml.add_parser("build-job", help="write the Azure ML pipeline job YAML of one batch (dry run)")
    build_job.add_argument("--stores", required=True, help="comma-separated store partition keys, e.g. S01,S02")
    build_job.add_argument("--task", choices=["train", "score"], default="train")
    build_job.add_argument("--out", default="job.yml", help="where to write the job YAML")
    sizing = azureml.add_parser("sizing", help="cluster size, wall time and cost per cycle from a `make bench` result")
    sizing.add_argument("--bench", required=True, help="a `make bench` result JSON (bench/results/…)")
    sizing.add_argument("--vcpus", type=int, default=4, help="vCPUs per node (one worker process each)")
    sizing.add_argument("--price", type=float, default=0.20, help="your price per node-hour")
    sizing.add_argument("--target-minutes", type=float, default=15.0, help="wall time of a cycle's three jobs")
    sizing.add_argument("--startup-s", type=float, default=240.0, help="start-up per job (measure yours)")
    sizing.add_argument("--overhead-s", type=float, default=2.0, help="overhead per mini-batch (measure yours)")
    sizing.add_argument("--series", default="10000,100000,1000000", help="sizes, comma-separated")
    sizing.add_argument("--rows-per-run", type=int, default=ScheduleSettings.model_fields["rows_per_run"].default,
                        help="schedule.rows_per_run: a cycle's runs hold at most this many rows, one after another")
    args = parser.parse_args(argv)
    if args.command == "azureml" and args.azureml_command == "sizing":  # arithmetic on a result: no settings
        return _azureml_sizing(args)
    if args.command == "bench":  # builds its own settings: the settings file and MM_ASSETS__* are not read
        from mm_assets.benchmark.run import Options
        from mm_assets.benchmark.run import main as bench_main

        return bench_main(Options(series=args.series, days=args.days, model=args.model, seed=args.seed,
                                  baseline_series=args.baseline_series, keep=args.keep, peers=not args.no_peers,
                                  workdir=Path(args.workdir) if args.workdir else None), json_path=args.json)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import sqlalchemy as sa

    from mm_assets.ingest.source import SourceError
    from mm_assets.preflight import StorageError

    try:
        return _dispatch(args, settings)
    except (SourceError, StorageError, InstanceError) as exc:  # a store cannot be used: one line naming the fix
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except sa.exc.DBAPIError:  # a report's database went away: say which, and not with the gate's exit 1
        from mm_assets.preflight import unreadable_database

        problem = unreadable_database(settings)
        if problem is None:  # every database answers: an error of another kind, shown whole
            raise
        print(f"error: {problem}", file=sys.stderr)
        return 2


def _derived_defaults(settings) -> list[str]:
    """The values the settings left unset (null above) take, as comment lines: a null default depends on the
    frequency, horizon, gap and model type, and the user choosing a model needs to see e.g. that a per-series
    model asks for horizon + gap + 30 periods of history."""
    from mm_assets.forecasting.model_types import BASELINE_TYPES, GLOBAL_TYPES, PER_SERIES_TYPES

    lines = []
    if settings.season_length is None:
        lines.append(f"season_length: {settings.season}")
    if not settings.model.min_train_periods:
        by_value: dict[int, list[str]] = {}
        for t in (*GLOBAL_TYPES, *(t for t in PER_SERIES_TYPES if t not in BASELINE_TYPES), AUTO):
            by_value.setdefault(settings.min_train_periods_for(t), []).append(t)
        others = "; ".join(f"{', '.join(ts)}: {v}" for v, ts in by_value.items()
                           if settings.model.type not in ts)
        lines.append(f"model.min_train_periods: {settings.min_train_periods} (model.type {settings.model.type}"
                     f"{'; other types ' + others if others else ''}), plus horizon + gap held out")
    if settings.ingest.max_normal_gap is None:
        lines.append(f"ingest.max_normal_gap: {settings.max_normal_gap}")
    return [f"# derived default {line}" for line in lines]


def _dispatch(args, settings) -> int:
    if args.command == "settings":
        from mm_assets.assets.settings_hold import SETTINGS_TAG, settings_digest

        print(f"# from {settings_path() or 'built-in defaults'} + MM_ASSETS__* environment")
        print(f"# digest {settings_digest(settings)}: the run tag {SETTINGS_TAG} of the runs that use these settings")
        print(json.dumps(redacted_settings(settings), indent=2))
        for line in _derived_defaults(settings):
            print(line)
        return 0
    if args.command == "generate-demo":
        _generate(args, settings)
        return 0
    if args.command == "demo":
        if args.regenerate or _source_missing(settings):
            _generate(args, settings)
        else:
            print(f"demo source already present at {settings.source.url} (use --regenerate to rewrite it)")
        return _interruptible(_run_cycle, settings, None, args.new_lake)
    if args.command == "cycle":
        if args.recent is not None and args.recent < 1:
            print("mm-assets: --recent must be a whole number of periods, 1 or more (e.g. --recent 4)", file=sys.stderr)
            return 2
        return _interruptible(_run_cycle, settings, args.recent, args.new_lake)
    if args.command == "promotion-report":
        return _promotion_report(settings, args)
    if args.command == "failures":
        return _failures(settings, args)
    if args.command == "retire-partition":
        return _retire_partitions(settings, args.keys)
    if args.command == "prune-runs":
        return _prune_runs(settings, args.older_than, args.dry_run)
    if args.command == "backtest":
        return _interruptible(_backtest, settings, args)
    if args.command == "azureml" and args.azureml_command == "build-job":
        return _azureml_build_job(settings, args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
