"""Copying the source's rows of some periods into the lake: one Parquet file per period, and the plan.

Why it is built this way:

- A long backfill is read in slices of about ``ingest.rows_per_read`` rows (at most ``ingest.periods_per_read``
  periods; the first slice is ``FIRST_READ_PERIODS`` periods, whose rows say how many periods the next may
  take), so memory follows the slice, not the backfill or the number of series. With several slices, files go
  to a staging folder first and replace the lake's files only once every slice has passed validation: a bad
  row anywhere leaves every stored file as it was.
- Source rows without a target after the newest sale are the plan (future prices and promotions): inside a
  period they stay in its file; after the newest period they go to ``raw/plan/current.parquet``, refreshed
  whenever the newest period, or the source's newest sale, is ingested (validated before any file is written).
- A sale dated after today is not a plan: it is named before anything is read further, and its series held
  back (the ingest refused with ``on_bad_rows: error``); the newest sale is then the newest up to today. So are
  sales dated far after the rest of the source by a few series (a mistyped year: ``sales_leap``).
- A bad row (``ingest.on_bad_rows: hold``) holds back its series, not the ingest: the series' rows of these periods
  are left out, what the lake stored of it is kept, and the held series are listed (``ingest.held``) for the
  store checks and the cycle summary. Past ``ingest.max_held_share`` of the series read, the ingest is refused
  instead: that many bad rows are a mapping or export problem.

No Dagster here: the ``raw_sales`` asset calls ``ingest_periods`` and turns ``IngestError`` into its failure.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

from mm_assets.ids import InvalidIdError
from mm_assets.ingest.held import (
    HELD_FILE,
    held_ids,
    held_kinds,
    held_series,
    kinds_line,
    once_each,
    outstanding,
    with_stored,
    without,
)
from mm_assets.ingest.id_formats import (
    merged,
    refuse_rewritten,
    renamed_in_periods,
    spans,
    stored_ids,
    two_spellings,
)
from mm_assets.ingest.period_grid import ANCHOR_DAY
from mm_assets.ingest.sales_leap import SalesLeap, sales_leap
from mm_assets.ingest.source import SourceError
from mm_assets.ingest.validation import (
    PARTITION_COLUMN,
    DataValidationError,
    MergedRows,
    check_no_future_sales,
    validate_raw,
)
from mm_assets.lake.lake import values_in
from mm_assets.settings import Settings

RAW_FOLDER = ("raw", "sales")
STAGING_FOLDER = "staging/raw_sales"  # a backfill's periods, by run, until every slice has passed validation
FIRST_READ_PERIODS = 7  # a backfill's first slice: its rows per period size the next slices
PLAN_FILE = ("raw", "plan", "current.parquet")  # planned rows after the newest period, replaced on each refresh
CORRECTIONS_FILE = ("raw", "corrections.parquet")  # periods an ingest found rewritten, and when (newest kept)
MAX_CORRECTIONS = 10_000


class IngestError(ValueError):
    """Rows that cannot be ingested; nothing stored was changed. ``metadata``: what the operator needs to find
    them (rows read, the failing slice)."""

    def __init__(self, message: str, metadata: dict | None = None):
        super().__init__(message)
        self.metadata = dict(metadata or {})


@dataclass
class IngestResult:
    rows: int
    periods: list[tuple[str, dict]]  # (period key, its metadata: rows, with sales and planned; series; stores)
    stores: list[str]  # store partitions seen in the rows and the plan, in natural order (store_order)
    plan_rows: int | None = None  # rows of the refreshed plan; None (no value) when the plan was not refreshed
    rewritten: list[str] = field(default_factory=list)  # periods already in the lake whose rows changed
    resized: list[str] = field(default_factory=list)  # of those, the ones with rows added or removed
    rebuilt: list[str] = field(default_factory=list)  # periods whose file in the lake could not be read
    # periods written again with other columns (the settings' columns changed) but the same actuals: no correction
    reshaped: list[str] = field(default_factory=list)
    # periods already in the lake that got sales they lacked, no stored actual changed (a store that reported late)
    late_sales: list[str] = field(default_factory=list)
    held: list[dict] = field(default_factory=list)  # series held back for bad rows (``HELD_COLUMNS`` each)
    spellings: list[str] = field(default_factory=list)  # id values written two ways in the rows read (per column)
    newest_sale: pd.Timestamp | None = None  # the source's, up to today (``last_sale``)
    merged: str | None = None  # rows ``ingest.on_duplicates: sum | last`` merged (``validation.MergedRows.line``)


def last_sale(reader, cfg: Settings, today: pd.Timestamp | None = None) -> pd.Timestamp | None:
    """The date of the source's newest sale before the period after ``today`` (default: today) and before a leap
    (``sales_leap``): a sale dated later is a typo the ingest holds back or refuses, and must not pass for the
    newest (the plan, the period in progress and how far behind the source is are all measured from it)."""
    return newest_sales(reader, cfg, today)[0]


def newest_sales(reader, cfg: Settings, today: pd.Timestamp | None = None) -> tuple[pd.Timestamp | None,
                                                                                    SalesLeap | None]:
    """(``last_sale``, the leap of sales after it when there is one: ``sales_leap``)."""
    today = pd.Timestamp.now().normalize() if today is None else today
    return sales_leap(reader, cfg, today + cfg.step)


def held_from(leap: SalesLeap | None, cfg: Settings, today: pd.Timestamp) -> pd.Timestamp:
    """The date from which a sale is held as mistyped: the first sale of a ``leap``, else the period after
    ``today``."""
    return leap.start if leap is not None else today + cfg.step


def store_order(store: str) -> tuple:
    """Natural order of store ids, numbers by value ("S2" before "S10", "S98" before "S100"): the order in which new
    stores are registered as partitions, which the UI lists and a run's range ("S01..S25") follows."""
    parts = tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", store))
    return parts, store  # "007" and "7" in one order every time


def sale_lag(settings: Settings, newest_sale: pd.Timestamp | None, today: pd.Timestamp | None = None) -> str | None:
    """What to say when the source's newest sale is more than ``max_normal_gap`` periods before today (a feed
    that stopped, or an extract of an older date), or None: every series then looks up to date next to the others
    and nothing else says the forecasts start in the past. The cycle's summary and raw_sales' check
    ``source_is_current`` say it."""
    if newest_sale is None:
        return None
    today = (today if today is not None else pd.Timestamp.now()).normalize()
    behind = int((today - newest_sale) / settings.step)
    if behind <= settings.max_normal_gap:
        return None
    unit = "days" if settings.is_daily else "weeks"
    return (f"the source's newest sale is {newest_sale.date()}, {behind:,} {unit} before today ({today.date()}): "
            "the forecasts start after it, so their first periods are already past. Expected of an extract of an "
            "older date (as the demo's, which end on a fixed day); otherwise check the feed")


def ingest_periods(reader, lake, cfg: Settings, keys: list[str], end: dt.datetime, refresh_plan: bool,
                   run_id: str) -> IngestResult:
    """Read, validate and write the periods ``keys`` (sorted period start dates; the last one ends at ``end``),
    and the plan after them when ``refresh_plan``. Raises ``IngestError``; nothing is changed then."""
    try:
        return _ingest(reader, lake, cfg, keys, end, refresh_plan, run_id)
    except SourceError as exc:  # a source that cannot be read as configured: its message, not a traceback
        raise IngestError(f"raw_sales {keys[0]}...{keys[-1]}: {exc}") from None


def _ingest(reader, lake, cfg: Settings, keys: list[str], end: dt.datetime, refresh_plan: bool,
            run_id: str) -> IngestResult:
    """``ingest_periods`` without turning source errors into ``IngestError``."""
    step = cfg.step
    label = f"{keys[0]}...{keys[-1]}"
    # rows without a target after the newest sale are the plan, before it they are missing data (an error)
    last_actual = reader.last_observed(cfg.columns.target)
    today = pd.Timestamp.now().normalize()
    hold = cfg.ingest.on_bad_rows == "hold"
    held: list[dict] = []  # series whose rows of these periods are held back
    newest, leap = newest_sales(reader, cfg, today) if last_actual is not None else (None, None)
    bound = held_from(leap, cfg, today)
    if last_actual is not None and last_actual >= bound:
        # a sale dated after today, or far after the rest of the source (a leap): its series is held back (or the
        # ingest refused), and the newest sale is the newest before it
        try:
            check_no_future_sales(reader.read(bound.to_pydatetime(), dt.datetime(9999, 1, 1)), cfg, today,
                                  held if hold else None, leap)
        except (DataValidationError, InvalidIdError) as exc:
            raise IngestError(f"raw_sales: {exc}") from None
        last_actual = newest
    now = last_actual if last_actual is not None else today
    plan = None
    # the plan is refreshed with the newest period, and whenever the periods read reach the source's newest sale:
    # a source a day behind the calendar (its sales up to the day before yesterday) has its plan read too
    plan_held: list[dict] = []  # series whose plan after them is held back (their sales are not)
    if refresh_plan or (last_actual is not None and pd.Timestamp(end) > last_actual):
        try:
            plan = _read_plan(reader, cfg, end, now, plan_held if hold else None)
        except (DataValidationError, InvalidIdError) as exc:
            raise IngestError(f"raw_sales plan rows after {end:%Y-%m-%d}: {exc}") from None
        _refuse_too_many_held(plan_held, _plan_series(reader, plan, plan_held, cfg, last_actual), cfg,
                              f"plan rows after {end:%Y-%m-%d}", len(plan), keys[-1:])
    most_series = 0
    width = min(cfg.ingest.periods_per_read, FIRST_READ_PERIODS)
    staging = f"{STAGING_FOLDER}/{run_id}" if len(keys) > width else None
    total, seen, written, lo = 0, set(), [], 0
    merged_rows = MergedRows()
    stored_names = lake.list(*RAW_FOLDER, suffix=".parquet")  # sorted
    settled = _stored_on_the_weekday(stored_names, cfg)
    ids = list(cfg.columns.ids)
    newest = (*RAW_FOLDER, stored_names[-1]) if stored_names else None  # the newest stored period file
    stored = None if cfg.ingest.on_rewritten_ids == "accept" else stored_ids(lake, newest, ids)
    newest_key = newest[-1].removesuffix(".parquet") if newest else None
    # the newest stored period's rows stay when it is not read again: its series go on there
    stored_date = None if newest_key is None or newest_key in keys else pd.Timestamp(newest_key)
    read_spans = None  # each series' first and last date read (only to judge rewritten ids)
    renamed: list[tuple[tuple, tuple]] = []  # series a period read again writes another way than its stored file
    distinct_ids: dict[str, set[str]] = {c: set() for c in ids}  # each id column's values read, as text
    try:
        while lo < len(keys):
            chunk = keys[lo : lo + width]
            lo += len(chunk)
            chunk_start = pd.Timestamp(chunk[0]).to_pydatetime()
            chunk_end = (pd.Timestamp(chunk[-1]) + step).to_pydatetime() if lo < len(keys) else end
            rows = reader.read(chunk_start, chunk_end)
            width = periods_that_fit(len(rows), len(chunk), cfg.ingest.rows_per_read, cfg.ingest.periods_per_read)
            held_before = len(held)
            try:
                frame = validate_raw(rows, cfg, now=now, held=held if hold else None, settled=settled,
                                     merged=merged_rows)
            except (DataValidationError, InvalidIdError) as exc:
                raise IngestError(f"raw_sales {label}: {exc}",
                                  {"rows_read": len(rows), "failed_slice": f"{chunk[0]} .. {chunk[-1]}"}) from None
            settled = settled or (not cfg.is_daily and len(frame) > 0)  # weeks read on their weekday
            if held:  # the share is of the most series a slice read; counted only when it is needed
                most_series = max(most_series, _series_count(frame, cfg) + len(held) - held_before)
                held[:] = once_each(held)
                _refuse_too_many_held(held, most_series, cfg, label, len(rows), chunk)
                frame = without(frame, held_ids(held, cfg), cfg)
            del rows
            _check_window(frame, cfg, chunk_start, chunk_end, getattr(reader, "query", None))
            if stored is not None and len(frame):
                chunk_spans = spans(frame, ids, cfg.columns.timestamp)
                read_spans = merged(read_spans, chunk_spans)
                renamed += _renamed_in(lake, chunk, chunk_spans, stored, ids)
                if staging is None:  # one read: judged before its periods are written
                    _refuse_rewritten(read_spans, stored, stored_date, ids, label, renamed)
            total += len(frame)
            if len(frame):
                seen.update(frame[PARTITION_COLUMN].unique())
                for c in ids:
                    distinct_ids[c].update(str(v) for v in pd.unique(frame[c]))
            periods = _write_periods(lake, frame, chunk, cfg, staging, held_ids(held, cfg) if held else None)
            # a slice without held series: its periods' counts (made for their metadata) stand in for its own
            most_series = max([most_series, *(counts["series"] for _, counts in periods)])
            written += periods
        if staging:
            _refuse_rewritten(read_spans, stored, stored_date, ids, label, renamed)  # before any staged file is moved
            held_now = held_ids(held, cfg) if held else None
            for key, metadata in written:  # a period whose rows did not change keeps its file (the cut appends)
                staged = f"{staging}/{key}.parquet"
                if held_now is not None:  # a series held in a later slice: its rows of the earlier periods go too
                    part = with_stored(lake, lake.read_parquet(staged), raw_file(key), held_now, cfg)
                    lake.write_parquet(part, staged)
                    metadata.update(period_counts(part, cfg))
                target = raw_file(key)
                _written(lake, target, functools.partial(lake.move_unless_same, staged, target),
                         lake.footer_columns(staged), cfg, metadata)
    finally:
        if staging:
            lake.delete(staging, recursive=True)
    if plan is not None:
        for c in ids:  # a product planned but not sold yet is a series too
            distinct_ids[c].update(str(v) for v in pd.unique(plan[c]))
        if plan_held:
            plan = with_stored(lake, plan, "/".join(PLAN_FILE), held_ids(plan_held, cfg), cfg)
        # kept when the same (``WRITTEN``): the training sensor does not retrain on a plan read again unchanged
        plan_file = lake.write_parquet_unless_same(plan, *PLAN_FILE)
        seen.update(plan[PARTITION_COLUMN].unique())
    for h in held:
        h["held_from"], h["held_to"] = keys[0], keys[-1]
    for h in plan_held:  # read again with the plan, whenever the newest period is ingested
        h["held_from"] = h["held_to"] = keys[-1]
        h["kind"] = f"plan: {h['kind']}"
    held = once_each(held + plan_held)
    lake.write_parquet(outstanding(held_series(lake), held, keys), *HELD_FILE)
    rewritten = [key for key, metadata in written if metadata.get("file") == "rewritten"]
    late = [key for key, metadata in written if metadata.get("file") == "late_sales"]
    if rewritten or late:  # forecast_accuracy judges both again: a late store's points of a period judged already
        _record_corrections(lake, sorted(rewritten + late))
    for _, metadata in written:  # whether the plan after these periods was read again with them, and changed
        metadata["plan_refreshed"] = plan is not None
        if plan is not None:
            metadata["plan_file"] = plan_file
    return IngestResult(rows=total, periods=written, stores=sorted(seen, key=store_order),
                        plan_rows=None if plan is None else len(plan),
                        rewritten=rewritten, held=held,
                        resized=[key for key, metadata in written if "rows_before" in metadata],
                        rebuilt=[key for key, metadata in written if metadata.get("file") == "rebuilt"],
                        reshaped=[key for key, metadata in written if metadata.get("file") == "reshaped"],
                        late_sales=late, newest_sale=last_actual, spellings=two_spellings(distinct_ids),
                        merged=merged_rows.line(", ".join([cfg.columns.timestamp, *ids])) if merged_rows.rows else None)


def _refuse_rewritten(read_spans, stored, stored_date, ids: list[str], label: str, renamed=()) -> None:
    try:
        refuse_rewritten(read_spans, stored, stored_date, ids, renamed)
    except DataValidationError as exc:
        raise IngestError(f"raw_sales {label}: {exc}") from None


def _renamed_in(lake, keys: list[str], read: pd.DataFrame, newest_ids: pd.DataFrame, ids: list[str]
                ) -> list[tuple[tuple, tuple]]:
    """``renamed_in_periods`` over the periods ``keys`` of this read whose files the lake holds (``read``: the
    ``spans`` of the read's series), when the read has series that the newest stored period does not hold: only
    such a series can be a stored one renamed. The stored files' ids are read only for the periods those series
    span, so a day's read of the newest period, whose series the lake knows, reads none."""
    index = read.index.to_frame(index=False)
    index.columns = ids
    known = index.merge(newest_ids[ids].drop_duplicates(), how="left", indicator=True)["_merge"].eq("both")
    unknown = read[~known.to_numpy()]
    if not len(unknown):
        return []
    starts = pd.to_datetime(pd.Series(keys))
    lo = max(int(starts.searchsorted(unknown["first"].min(), side="right")) - 1, 0)
    hi = int(starts.searchsorted(unknown["last"].max(), side="right")) - 1
    files = [(*RAW_FOLDER, f"{key}.parquet") for key in keys[lo:hi + 1]]
    tables = [lake.read_table(*path, columns=ids) for path in files if lake.exists(*path)]
    if not tables:
        return []
    stored = (pa.concat_tables(tables, promote_options="permissive").group_by(ids).aggregate([])
              .to_pandas().astype(str).drop_duplicates())
    return renamed_in_periods(index, stored, ids)


def _record_corrections(lake, periods: list[str]) -> None:
    """Add ``periods`` (rewritten by this ingest: their actuals changed in the source, or sales arrived late) to
    the corrections file, with the time: forecast_accuracy judges again the forecasts of a period corrected after it
    judged them."""
    new = pd.DataFrame({"period": periods, "rewritten_at": pd.Timestamp.now("UTC").tz_localize(None)})
    frame = pd.concat([corrections(lake), new], ignore_index=True) if lake.exists(*CORRECTIONS_FILE) else new
    lake.write_parquet(frame.tail(MAX_CORRECTIONS).reset_index(drop=True), *CORRECTIONS_FILE)


def corrections(lake) -> pd.DataFrame:
    """The periods ingests found rewritten (``period``: its key, ``rewritten_at``: when, UTC), newest last."""
    if not lake.exists(*CORRECTIONS_FILE):
        return pd.DataFrame({"period": pd.Series(dtype=str), "rewritten_at": pd.Series(dtype="datetime64[ns]")})
    return lake.read_parquet(*CORRECTIONS_FILE)


def _series_count(frame: pd.DataFrame, cfg: Settings) -> int:
    return int(frame[list(cfg.columns.ids)].drop_duplicates().shape[0]) if len(frame) else 0


def _plan_series(reader, plan: pd.DataFrame, plan_held: list[dict], cfg: Settings,
                 last_actual: pd.Timestamp | None) -> int:
    """The series a plan's held share is judged against: those with plan rows, or, when that few would refuse the
    ingest, the series selling in the newest period. A source where only a few series are planned yet (3 of 20)
    is not "a mapping problem" for one typo among them: that series' plan is held, the rest is read."""
    planned = _series_count(plan, cfg) + len(plan_held)
    if not plan_held or len(plan_held) <= cfg.ingest.max_held_share * planned or last_actual is None:
        return planned
    newest = last_actual.to_pydatetime()
    selling = reader.read(newest, newest + cfg.step.to_pytimedelta())
    return max(planned, _series_count(selling.dropna(subset=list(cfg.columns.ids)), cfg))


def _refuse_too_many_held(held: list[dict], series: int, cfg: Settings, label: str, rows: int,
                          chunk: list[str]) -> None:
    """Raise ``IngestError`` when more than ``ingest.max_held_share`` of the ``series`` read are held back: so
    many bad rows are a mapping or export problem, and an ingest that took only the rest would look like a good day."""
    share = cfg.ingest.max_held_share
    if not held or len(held) <= share * series:
        return
    kinds = held_kinds(held)
    # a held series' problem counts its own rows: the kind's rows over every series are said beside it
    rows_of_kind = sum(int(h.get("bad_rows") or 0) for h in held if h["kind"] == kinds[0][0])
    raise IngestError(
        f"raw_sales {label}: {len(held):,} of {series:,} series read have bad rows, more than "
        f"ingest.max_held_share {share:.0%}: a column mapped wrong or a broken export? Nothing was written. "
        f"{kinds_line(kinds)}. The most common, {rows_of_kind:,} rows in {kinds[0][1]:,} series, in the first of "
        f"them: {kinds[0][2]}",
        {"rows_read": rows, "failed_slice": f"{chunk[0]} .. {chunk[-1]}", "series_with_bad_rows": len(held)})


def _check_window(frame: pd.DataFrame, cfg: Settings, start: dt.datetime, end: dt.datetime, query: str | None) -> None:
    """Raise ``IngestError`` when a ``source.query`` returned rows outside the window it was asked for: each row
    would be filed under the slice's first or last period, once per slice, and nothing else would notice (the
    datasets then hold every row several times)."""
    if not query or not len(frame):
        return
    ts = frame[cfg.columns.timestamp]
    outside = (ts < pd.Timestamp(start)) | (ts >= pd.Timestamp(end))
    if outside.any():
        examples = ", ".join(sorted({f"{d:%Y-%m-%d}" for d in ts[outside].head(1000)})[:3])
        raise IngestError(
            f"raw_sales: source.query returned {int(outside.sum()):,} rows dated outside the window it was asked for "
            f"({start:%Y-%m-%d} up to {end:%Y-%m-%d}), e.g. {examples}: it must filter the timestamp column with "
            ":start (inclusive) and :end (exclusive), e.g. WHERE date >= :start AND date < :end; nothing was written")


def periods_that_fit(rows: int, periods: int, rows_per_read: int, periods_per_read: int) -> int:
    """The periods of the next slice: as many as ``rows_per_read`` holds at the rows per period just read, at
    least one, at most ``periods_per_read``."""
    per_period = max(rows / max(periods, 1), 1.0)
    return int(min(max(rows_per_read // per_period, 1), periods_per_read))


def _stored_on_the_weekday(stored_names: list[str], cfg: Settings) -> bool:
    """Whether the lake holds weekly periods of this frequency (the newest stored ones all on its weekday): the
    source's weeks are then known to be dated as configured (``validate_raw``'s ``settled``). Periods stored
    under another frequency (daily ones, before the settings changed) are not. ``stored_names``: the lake's
    period files, sorted."""
    if cfg.is_daily:
        return False
    names = stored_names[-5:]
    days = pd.to_datetime([n.removesuffix(".parquet") for n in names], errors="coerce")
    return bool(len(days)) and not days.isna().any() and bool((days.day_of_week == ANCHOR_DAY[cfg.week_anchor]).all())


def _read_plan(reader, cfg: Settings, end, now, held: list[dict] | None = None) -> pd.DataFrame:
    """Source rows after the newest period without a target: planned prices, promotions, any regressor known
    ahead (rows there that do have a target wait for their own period). ``held``: as ``validate_raw``'s."""
    frame = validate_raw(reader.read(end, dt.datetime(9999, 1, 1)), cfg, now=now, held=held)
    return frame[frame[cfg.columns.target].isna()].reset_index(drop=True)


def _period_of(ts: pd.Series, keys: list[str]) -> pd.Series:
    """The period partition key of each timestamp (keys are period start dates, sorted)."""
    starts = pd.to_datetime(pd.Series(keys))
    idx = starts.searchsorted(ts, side="right") - 1
    return pd.Series(pd.Series(keys).to_numpy()[idx.clip(0)], index=ts.index)


def _write_periods(lake, frame: pd.DataFrame, keys: list[str], cfg: Settings, staging: str | None,
                   held_ids: pd.DataFrame | None = None) -> list[tuple[str, dict]]:
    """One Parquet file per period key (an empty period too: its partition is then materialized as empty),
    into the raw folder or ``staging``; returns each key's metadata. ``held_ids``: series held back, whose rows
    the lake already holds stay in the raw files (written straight there; staged files are mended at the move)."""
    cols = cfg.columns
    frame = frame.assign(_period=_period_of(frame[cols.timestamp], keys) if len(frame) else pd.Series(dtype=str))
    grouped = dict(tuple(frame.groupby("_period", sort=False))) if len(frame) else {}
    empty = frame.drop(columns="_period").iloc[0:0]
    out = []
    for key in keys:
        part = grouped.get(key)
        part = empty if part is None else part.drop(columns="_period")
        if held_ids is not None and not staging:
            part = with_stored(lake, part, raw_file(key), held_ids, cfg)
        counts = period_counts(part, cfg)
        if staging:
            lake.write_parquet(part, staging, f"{key}.parquet")
        else:  # a period whose rows did not change keeps its file (the datasets cut then appends)
            target = raw_file(key)
            _written(lake, target, functools.partial(lake.write_parquet_unless_same, part, target),
                     list(part.columns), cfg, counts)
        out.append((key, counts))
    return out


def _written(lake, path: str, write: Callable[[], str], columns: list[str] | None, cfg: Settings,
             metadata: dict) -> None:
    """``write()``, and its account of the period file at ``path`` in ``metadata``: ``file`` (below), and
    ``rows_before`` for a file rewritten with another number of rows (rows removed, or added beside changed
    values: a store or series gone from the source, or a reload, rather than values corrected; from the footers).

    ``file``: ``write()``'s account (``new``, ``rewritten``, ``unchanged``), with
    ``rebuilt`` for a file that was there but could not be read (damaged in the lake: written again from the
    source, whose rows did not change, so not a correction for forecast_accuracy to judge again), and ``reshaped``
    for a file written again with other ``columns`` (a regressor added to or dropped from the settings) whose
    actuals did not change: not a correction either. A file written again whose stored actuals are all there,
    unchanged, corrects nothing either: ``first_sales`` when it held plan rows alone and now has sales (a source
    whose sales arrive later than its plan), ``late_sales`` when it held some sales and more arrived (a store that
    reports a period late: its plan rows got their sales, or its rows were added), ``replanned`` when only rows
    without sales changed. The stored actuals are read only when the columns differ, the file holds rows without a
    target, or the new one has more rows (``metadata["rows"]``); the rest is known from the files' footers."""
    footer = lake.footer(path)
    stored = None if footer is None else list(footer.schema.to_arrow_schema().names)
    damaged = footer is None and lake.exists(path)
    sold = values_in(footer, cfg.columns.target)
    before = None
    reshaped = stored is not None and columns is not None and stored != columns
    if stored is not None and (reshaped or sold is None or sold < footer.num_rows
                               or metadata.get("rows", 0) > footer.num_rows):
        before = _actuals(lake, path, stored, cfg)
    status = write()
    after = lake.footer(path) if status == "rewritten" else None  # the new file's footer, read once
    metadata["file"] = _account(lake, path, status, damaged, before, sold == 0, reshaped, after, cfg)
    if metadata["file"] == "rewritten" and footer is not None and after is not None \
            and after.num_rows != footer.num_rows:
        metadata["rows_before"] = footer.num_rows


def _account(lake, path: str, status: str, damaged: bool, before: pd.DataFrame | None, plan_only: bool,
             reshaped: bool, after, cfg: Settings) -> str:
    """``_written``'s ``file``; ``after``: the rewritten file's footer; ``before``: the stored rows (timestamp, ids,
    target), when read; ``reshaped``: the file is written with other columns."""
    if damaged and status == "rewritten":
        return "rebuilt"
    if before is None or status != "rewritten":
        return status
    actuals = _actuals(lake, path, list(after.schema.to_arrow_schema().names) if after is not None else [], cfg)
    if actuals is None:
        return status
    if reshaped and actuals.equals(before):
        return "reshaped"
    target = cfg.columns.target
    old, new = before.dropna(subset=[target]), actuals.dropna(subset=[target])
    keys = [c for c in before.columns if c != target]
    kept = old.merge(new, on=keys, how="left", suffixes=("", "_new"))
    if not (kept[f"{target}_new"] == kept[target]).all():
        return status  # an actual changed or is gone: a correction
    if len(new) == len(old):
        return "replanned"
    return "first_sales" if plan_only else "late_sales"


def _actuals(lake, path: str, columns: list[str], cfg: Settings) -> pd.DataFrame | None:
    """The period file's (timestamp, ids, target) rows in one order, None when it lacks one of those columns."""
    cols = cfg.columns
    keys = [cols.timestamp, *cols.ids]
    if any(c not in columns for c in [*keys, cols.target]):
        return None
    frame = lake.read_parquet(path, columns=[*keys, cols.target])
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def periods_to_read(keys: list[str], lake, recent: int, target: str | None = None,
                    newest_sale: pd.Timestamp | None = None) -> list[str]:
    """The periods of ``keys`` (all of the source's, sorted) an ingest of the ``recent`` newest reads: those, and
    from the first period before them that the lake lacks, and those ``waiting_from`` names (a run reads one
    range of periods). Why: reading every period again takes corrections anywhere in the past, but at 100,000
    weekly series it was 7 minutes of a 17-minute cycle that added one week."""
    lo = max(0, len(keys) - max(1, recent))
    stored = set(lake.list(*RAW_FOLDER, suffix=".parquet"))
    missing = [i for i, key in enumerate(keys[:lo]) if f"{key}.parquet" not in stored]
    if missing:
        lo = missing[0]
    return keys[waiting_from(keys, lo, lake, stored, target, newest_sale):]


def waiting_from(keys: list[str], lo: int, lake, stored: set[str] | None = None, target: str | None = None,
                 newest_sale: pd.Timestamp | None = None, held: bool = True) -> int:
    """The first of ``keys`` (sorted) an ingest of ``keys[lo:]`` reads again because rows there wait for it: with
    ``held``, a series held back for bad rows (from the first period of the read that held it: after a full read,
    the first of all), and the periods just before that hold rows without a ``target`` up to ``newest_sale`` (the
    plan of a store that had not reported them yet, or of a source whose sales arrive later than its plan: their
    sales may have come since). Their footers say so; no data is read. ``stored``: the lake's period file names,
    when listed already."""
    stored = set(lake.list(*RAW_FOLDER, suffix=".parquet")) if stored is None else stored
    waiting = held_series(lake)["held_from"].dropna() if held else pd.Series(dtype=object)
    if len(waiting):
        lo = min(lo, bisect.bisect_left(keys, str(pd.Timestamp(waiting.min()).date())))
    if target is not None and newest_sale is not None:
        i = lo - 1
        while i >= 0 and f"{keys[i]}.parquet" in stored:
            footer = lake.footer(*RAW_FOLDER, f"{keys[i]}.parquet")
            values = values_in(footer, target)
            if values is None or values >= footer.num_rows:  # every row has its target: nothing waits
                break
            if pd.Timestamp(keys[i]) <= newest_sale:
                lo = i
            i -= 1
    return lo


def newest_sold_period(lake, target: str, files: dict[str, str],
                       known: dict[str, tuple[str, bool]] | None = None) -> pd.Timestamp | None:
    """The newest period whose raw file holds a sale, from the newest name back (``files``: the raw folder's
    names and signatures, ``Lake.signatures``): the periods after the source's newest sale hold the plan alone.
    Each file's footer says it (the target's values); ``known`` (name -> (signature, sold)), kept by a caller that
    asks again, spares the footers of files whose signature did not change."""
    known = {} if known is None else known
    for name in sorted(files, reverse=True):
        day = pd.to_datetime(name.removesuffix(".parquet"), format="%Y-%m-%d", errors="coerce")
        if pd.isna(day):
            continue
        if name not in known or known[name][0] != files[name]:
            known[name] = (files[name], bool(lake.footer_values(target, *RAW_FOLDER, name)))
        if known[name][1]:
            return pd.Timestamp(day)
    return None


def newest_sale_of(lake, target: str, warn: Callable[[str], None]) -> pd.Timestamp | None:
    """``newest_sold_period`` of the lake's raw folder, None (said with ``warn``) when it cannot be read."""
    try:
        return newest_sold_period(lake, target, lake.signatures(*RAW_FOLDER, suffix=".parquet"))
    except Exception as exc:  # noqa: BLE001 - what is measured against it says nothing rather than fail
        warn(f"the lake's newest sale is not known ({type(exc).__name__}: {exc}): no store is measured against it")
        return None


def raw_file(key: str) -> str:
    """The lake path of period ``key``'s raw file. Its ``file`` metadata says what the ingest did to it
    (``mm_assets.lake.lake.WRITTEN``): ``rewritten`` is a period whose rows changed in the source since the last ingest, a
    correction the operator should know of."""
    return "/".join((*RAW_FOLDER, f"{key}.parquet"))


def period_counts(part: pd.DataFrame, cfg: Settings) -> dict:
    """A period file's counts, saying which rows are sales and which the plan: a period after the newest sale
    holds only planned rows (prices, promotions), and 190 rows of plan must not read as 190 sales."""
    cols = cfg.columns
    sold = part[cols.target].notna()
    return {
        "rows": len(part),
        "rows_with_sales": int(sold.sum()),
        "planned_rows": int((~sold).sum()),
        "series": int(part[cols.ids].drop_duplicates().shape[0]),
        "series_with_sales": int(part.loc[sold, cols.ids].drop_duplicates().shape[0]),
        "stores": int(part[PARTITION_COLUMN].nunique()),
    }
