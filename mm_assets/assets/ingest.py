"""raw_sales: the source's rows of each period, copied into the lake as one Parquet file per period.

A backfill of any number of periods is one run (BackfillPolicy.single_run), read from the source
``ingest.periods_per_read`` periods per query. Source rows without a target after the newest sale are the plan
(future prices and promotions): inside a period they are kept in its file; after the newest period they go to
``raw/plan/current.parquet``, refreshed whenever the newest period is ingested. New stores
seen in the data are registered as store partitions, so the model assets pick them up automatically.
"""


import datetime as dt

import dagster as dg
import pandas as pd

from mm_assets.assets.partitions import group_partitions, period_partitions
from mm_assets.ids import InvalidIdError
from mm_assets.ingest.validation import PARTITION_COLUMN, DataValidationError, check_no_future_sales, validate_raw
from mm_assets.resources import LakeResource, SettingsResource, SourceResource
from mm_assets.settings import Settings

RAW_FOLDER = ("raw", "sales")
PLAN_FILE = ("raw", "plan", "current.parquet")  # planned rows after the newest period, replaced on each refresh


def _read_plan(reader, cfg: Settings, end, now) -> pd.DataFrame:
    """Source rows after the newest period without a target: planned prices, promotions, any regressor known
    ahead (rows there that do have a target wait for their own period)."""
    frame = validate_raw(reader.read(end, dt.datetime(9999, 1, 1)), cfg, now=now)
    return frame[frame[cfg.columns.target].isna()].reset_index(drop=True)


def _period_of(ts: pd.Series, keys: list[str], settings: Settings) -> pd.Series:
    """The period partition key of each timestamp (keys are period start dates, sorted)."""
    starts = pd.to_datetime(pd.Series(keys))
    idx = starts.searchsorted(ts, side="right") - 1
    return pd.Series(pd.Series(keys).to_numpy()[idx.clip(0)], index=ts.index)


def _write_periods(
    the_lake, frame: pd.DataFrame, keys: list[str], cfg: Settings, staging: str | None
) -> list[tuple[str, dict]]:
    """One Parquet file per period key (an empty period too: its partition is then materialized as empty),
    into the raw folder or ``staging``; returns each key's metadata."""
    cols = cfg.columns
    frame = frame.assign(_period=_period_of(frame[cols.timestamp], keys, cfg) if len(frame) else pd.Series(dtype=str))
    grouped = dict(tuple(frame.groupby("_period", sort=False))) if len(frame) else {}
    empty = frame.drop(columns="_period").iloc[0:0]
    out = []
    for key in keys:
        part = grouped.get(key)
        part = empty if part is None else part.drop(columns="_period")
        if staging:
            the_lake.write_parquet(part, staging, f"{key}.parquet")
        else:
            the_lake.write_parquet(part, *RAW_FOLDER, f"{key}.parquet")
        out.append((key, {
            "rows": len(part),
            "series": int(part[cols.ids].drop_duplicates().shape[0]) if len(part) else 0,
            "stores": int(part[PARTITION_COLUMN].nunique()) if len(part) else 0,
        }))
    return out


def build_ingest_assets(settings: Settings) -> list:
    periods = period_partitions(settings)
    groups = group_partitions(settings)
    cols = settings.columns

    @dg.asset(
        name="raw_sales",
        partitions_def=periods,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name="ingest",
        kinds={"sql", "parquet"},
        description=(
            "Source rows of one period (day or week), validated and copied into the lake as "
            "raw/sales/<period>.parquet. Registers new store partitions found in the data."
        ),
        metadata={
            "dagster/column_schema": dg.TableSchema(
                columns=[
                    dg.TableColumn(cols.timestamp, "datetime", description="observation timestamp"),
                    *[dg.TableColumn(c, "string", description="series id column") for c in cols.ids],
                    dg.TableColumn(cols.target, "float", description="target (sales), >= 0"),
                    *[dg.TableColumn(c, "float", description="regressor") for c in cols.regressors],
                    dg.TableColumn(PARTITION_COLUMN, "string", description="Dagster store partition of the row"),
                ]
            )
        },
    )
    def raw_sales(
        context: dg.AssetExecutionContext,
        settings: SettingsResource,
        source: SourceResource,
        lake: LakeResource,
    ) -> dg.MaterializeResult:
        cfg = settings.get()
        window = context.partition_time_window
        start = window.start.replace(tzinfo=None)
        end = window.end.replace(tzinfo=None)
        keys = list(context.partition_keys)
        the_lake = lake.get()
        reader = source.get()
        step = pd.Timedelta(days=1) if cfg.is_daily else pd.Timedelta(days=7)
        per_read = cfg.ingest.periods_per_read
        # rows without a target after the newest sale are the plan (future prices and promotions), before it
        # they are missing data (an error)
        last_actual = reader.last_observed(cfg.columns.target)
        today = pd.Timestamp.now().normalize()
        if last_actual is not None and last_actual >= today + step:
            try:
                newest = last_actual.to_pydatetime()
                check_no_future_sales(reader.read(newest, newest + dt.timedelta(days=1)), cfg, today)
            except DataValidationError as exc:
                raise dg.Failure(description=f"raw_sales: {exc}") from None
        now = last_actual if last_actual is not None else today
        total_rows = 0
        seen: set[str] = set()
        # A long backfill is read a slice of periods at a time, so memory follows the slice, not the backfill.
        # With several slices, files go to a staging folder first and replace the lake's files only once every
        # slice has passed validation: a bad row anywhere leaves every stored file as it was.
        slices = [keys[lo : lo + per_read] for lo in range(0, len(keys), per_read)]
        staging = f"staging/raw_sales/{context.run.run_id}" if len(slices) > 1 else None
        written: list[tuple[str, dict]] = []
        plan = None
        if keys[-1] == periods.get_last_partition_key():  # the newest period: refresh the plan beyond it
            try:
                plan = _read_plan(reader, cfg, end, now)
            except (DataValidationError, InvalidIdError) as exc:
                raise dg.Failure(description=f"raw_sales plan rows after {end:%Y-%m-%d}: {exc}") from None
        try:
            for index, chunk in enumerate(slices):
                chunk_start = pd.Timestamp(chunk[0]).to_pydatetime()
                chunk_end = (pd.Timestamp(chunk[-1]) + step).to_pydatetime() if index < len(slices) - 1 else end
                rows = reader.read(chunk_start, chunk_end)
                try:
                    frame = validate_raw(rows, cfg, now=now)
                except (DataValidationError, InvalidIdError) as exc:
                    raise dg.Failure(
                        description=f"raw_sales {context.partition_key_range}: {exc}",
                        metadata={"rows_read": len(rows), "failed_slice": f"{chunk[0]} .. {chunk[-1]}"},
                    ) from None
                del rows
                total_rows += len(frame)
                if len(frame):
                    seen.update(frame[PARTITION_COLUMN].unique())
                written += _write_periods(the_lake, frame, chunk, cfg, staging)
            for key, metadata in written:
                if staging:
                    the_lake.move(f"{staging}/{key}.parquet", "/".join((*RAW_FOLDER, f"{key}.parquet")))
                context.add_asset_metadata(metadata, partition_key=key)
        finally:
            if staging:
                the_lake.delete(staging, recursive=True)
        if plan is not None:  # replaces the previous plan (validated before any file was written)
            the_lake.write_parquet(plan, *PLAN_FILE)
            seen.update(plan[PARTITION_COLUMN].unique())
        seen = sorted(seen)
        existing = set(context.instance.get_dynamic_partitions(groups.name))
        new = [k for k in seen if k not in existing]
        if new:
            context.instance.add_dynamic_partitions(groups.name, new)
            context.log.info(f"registered {len(new)} new {groups.name} partitions: {new[:20]}")
        context.log.info(f"ingested {total_rows} rows into {len(keys)} period files")
        return dg.MaterializeResult(
            metadata={
                "batch_rows": total_rows,
                "batch_periods": len(keys),
                "plan_rows": -1 if plan is None else len(plan),
                "new_partitions": len(new),
                "read_window": f"{start:%Y-%m-%d} .. {end:%Y-%m-%d} (exclusive)",
                "lake_folder": dg.MetadataValue.path(the_lake.path(*RAW_FOLDER)),
            }
        )

    return [raw_sales]

