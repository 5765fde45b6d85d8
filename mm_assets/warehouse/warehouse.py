"""The SQL warehouse BI reads: SQLAlchemy Core, any URL (SQLite by default, Postgres, Synapse/SQL Server).

Why SQLAlchemy Core with generic types: the same table definitions create and load SQLite on a laptop and a
server warehouse in production. Publishing a partition is idempotent: inside one transaction the rows each
published series replaces (its origin's and any later one's: see ``replaced_predictions``) are deleted and the new
ones bulk-inserted (executemany), so re-publishing replaces and a crash mid-publish leaves the previous rows in place.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd
import sqlalchemy as sa

from mm_assets.sql import engine_for, in_chunks, insert_frame
from mm_assets.warehouse.columns import documented

PREDICTION_COLUMNS = ("origin", "ds", "yhat", "baseline_yhat", "model_type", "model_version", "model_source",
                      "envelope_replaced")
# columns predictions scored by an older version lack, with the value they stand for
_PREDICTION_DEFAULTS = {"envelope_replaced": 0, "baseline_yhat": float("nan")}


def with_prediction_defaults(frame: pd.DataFrame) -> pd.DataFrame:
    """Predictions with every optional column (older predictions files lack ``envelope_replaced`` and
    ``baseline_yhat``: 0 and NULL)."""
    missing = {c: v for c, v in _PREDICTION_DEFAULTS.items() if c not in frame.columns}
    return frame.assign(**missing) if missing else frame


def forecast_origins(predictions: pd.DataFrame) -> list[dt.datetime]:
    """The distinct forecast origins of predictions, sorted (from the column's unique values: a store's file has
    hundreds of thousands of rows and a handful of origins)."""
    return [pd.Timestamp(o).to_pydatetime() for o in sorted(pd.to_datetime(predictions["origin"]).unique())]


SERIES_PER_DELETE = 200  # series named in one DELETE (``any_series``): an OR of that many id matches


def replaced_predictions(table: sa.Table, partition_key: str, predictions: pd.DataFrame,
                         id_columns: Sequence[str], kept: Sequence[tuple] = ()) -> list[sa.Delete]:
    """The DELETEs that make publishing a store's forecasts replace, series by series: each published series' rows
    of the origin it is forecast from now and of any later origin. A later origin than a series' own means the
    source's newest periods were taken back (a correction, a reload): forecasts made from those periods would stay
    in the table, newer than the truth, and a BI query for the latest origin would show them.

    Why per series: a store's series need not share an origin. One whose data stopped a period early (a week
    without a row, a series held back) is forecast again from its own last period; the forecasts the store's other
    series made from that period are the history ``forecast_accuracy`` judges, and deleting every row of the
    store at that origin lost them. So: one DELETE of the store's rows from the newest origin published on (what
    most series are forecast from), and for the series forecast from an older one, their own rows between.

    ``kept`` (``gone_series``): series with rows at the newest origin that these predictions do not publish (gone
    from the data since a publish from the same origin). Their rows there stay, as they stay when the next publish
    is from a new origin; only the published series' rows at that origin are deleted then, series by series."""
    if not len(predictions):
        return []
    ids = list(id_columns)
    origins = pd.to_datetime(predictions["origin"]).groupby([predictions[c] for c in ids], sort=False).min()
    newest = origins.max().to_pydatetime()
    if kept:
        out = [table.delete().where(table.c.partition_key == partition_key, table.c.origin > newest)]
        keys = [key if isinstance(key, tuple) else (key,) for key in origins.index]
        for chunk in in_chunks(keys, SERIES_PER_DELETE):
            out.append(table.delete().where(table.c.partition_key == partition_key, table.c.origin == newest,
                                            any_series(table, ids, chunk)))
    else:
        out = [table.delete().where(table.c.partition_key == partition_key, table.c.origin >= newest)]
    older = origins[origins < newest]
    for origin, series in older.groupby(older, sort=True):
        keys = [key if isinstance(key, tuple) else (key,) for key in series.index]
        for chunk in in_chunks(keys, SERIES_PER_DELETE):
            out.append(table.delete().where(table.c.partition_key == partition_key,
                                            table.c.origin >= origin.to_pydatetime(), table.c.origin < newest,
                                            any_series(table, ids, chunk)))
    return out


def gone_series(conn, table: sa.Table, partition_key: str, predictions: pd.DataFrame,
                id_columns: Sequence[str]) -> list[tuple]:
    """The series with rows of the partition at the newest origin ``predictions`` publish on that they do not
    publish: gone from the data since a publish from that origin (``replaced_predictions`` keeps their rows). One
    indexed query of the distinct ids at that origin."""
    if not len(predictions):
        return []
    ids = list(id_columns)
    newest = pd.to_datetime(predictions["origin"]).max().to_pydatetime()
    stored = conn.execute(sa.select(*(table.c[c] for c in ids)).where(
        table.c.partition_key == partition_key, table.c.origin == newest).distinct()).all()
    if not stored:
        return []
    published = set(predictions[ids].astype(str).drop_duplicates().itertuples(index=False, name=None))
    return [tuple(row) for row in stored if tuple(str(v) for v in row) not in published]


def prediction_deletes(conn, table: sa.Table, partition_key: str, predictions: pd.DataFrame,
                       id_columns: Sequence[str], in_data: pd.DataFrame | None = None) -> tuple[list[sa.Delete], int]:
    """(The DELETEs before a store's predictions are written, how many series they take out for having left the
    data). ``replaced_predictions``, keeping the rows at the newest origin of series no longer published there
    (``gone_series``) while they are still in the store's data (``in_data``: their ids; a scoring that failed
    this time); those gone from the data lose them: forecasts made from rows the source took back, which
    ``current_forecasts`` would show beside the store's current ones, from the same origin."""
    kept = gone_series(conn, table, partition_key, predictions, id_columns)
    left: list[tuple] = []
    if kept and in_data is not None:
        present = set(in_data[list(id_columns)].astype(str).itertuples(index=False, name=None))
        left = [key for key in kept if tuple(str(v) for v in key) not in present]
        kept = [key for key in kept if tuple(str(v) for v in key) in present]
    out = replaced_predictions(table, partition_key, predictions, id_columns, kept)
    if left and kept:  # with nothing kept, the store's rows from the newest origin on are deleted already
        newest = pd.to_datetime(predictions["origin"]).max().to_pydatetime()
        for chunk in in_chunks(left, SERIES_PER_DELETE):
            out.append(table.delete().where(table.c.partition_key == partition_key, table.c.origin >= newest,
                                            any_series(table, id_columns, chunk)))
    return out, len(left)


def any_series(table: sa.Table, ids: Sequence[str], keys: Sequence[tuple]) -> sa.ColumnElement[bool]:
    """The rows of any of the series ``keys`` (tuples of id values, in the order of ``ids``; at most
    ``SERIES_PER_DELETE`` of them, so the statement stays within the databases' limits)."""
    return sa.or_(*(sa.and_(*(table.c[c] == str(v) for c, v in zip(ids, key))) for key in keys))


def retention_cutoff(newest, days: int | None) -> dt.datetime | None:
    """The oldest origin a store keeps in forecast_predictions and forecast_accuracy under
    ``storage.forecast_retention_days`` (``days``): that many days before ``newest`` (the newest origin it
    publishes, or its newest observed period), or None (keep everything; nothing published). Measured from the
    data's own dates, not the clock, so an extract of an older year keeps its forecasts."""
    if days is None or newest is None or pd.isna(newest):
        return None
    return (pd.Timestamp(newest) - pd.Timedelta(days=days)).to_pydatetime()


def _prune(conn, table: sa.Table, partition_key: str, keep_from: dt.datetime) -> int:
    """Delete the partition's rows of ``table`` (forecast_predictions or forecast_accuracy) of origins before
    ``keep_from`` (their index leads with partition_key, origin); returns how many."""
    return int(conn.execute(table.delete().where(table.c.partition_key == partition_key,
                                                 table.c.origin < keep_from)).rowcount or 0)


def _prediction_table(metadata: sa.MetaData, id_columns: Sequence[str]) -> sa.Table:
    return documented(sa.Table(
        "forecast_predictions",
        metadata,
        *[sa.Column(c, sa.String(200), nullable=False) for c in id_columns],
        sa.Column("origin", sa.DateTime, nullable=False),
        sa.Column("ds", sa.DateTime, nullable=False),
        sa.Column("yhat", sa.Float, nullable=False),
        sa.Column("baseline_yhat", sa.Float),
        sa.Column("model_type", sa.String(64), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("model_source", sa.String(16), nullable=False),
        sa.Column("envelope_replaced", sa.Integer, nullable=False, server_default="0"),
        sa.Column("partition_key", sa.String(256), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("published_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint(*id_columns, "origin", "ds", name="pk_forecast_predictions"),
        sa.Index("ix_forecast_predictions_partition", "partition_key", "origin"),
    ), id_columns)


METRIC_COLUMNS = ("model_type", "version", "status", "reason", "accuracy", "wape", "mase", "smape", "mape", "rmse",
                  "n_obs", "data_start", "data_end", "trained_at", "training_run_id")
# model_metrics only (the current state): whether the series' newest training failed after its model was made,
# and whether the ingest holds its newest rows back for bad rows in the source (its model and forecasts are older)
LATEST_ONLY_COLUMNS = ("training_failed_at", "training_error", "held_since", "held_problem")
DECISION_COLUMNS = ("decision", "reason", "challenger_version", "challenger_model_type", "challenger_accuracy",
                    "challenger_mase", "challenger_wape", "champion_version", "champion_wape", "decided_at",
                    "gate_run_id")


def _metric_columns(id_columns: Sequence[str]) -> list[sa.Column]:
    """The columns of one model's holdout metrics (both metrics tables)."""
    return [
        *[sa.Column(c, sa.String(200), nullable=False) for c in id_columns],
        sa.Column("model_type", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        *[sa.Column(c, sa.Float) for c in ("accuracy", "wape", "mase", "smape", "mape", "rmse")],
        sa.Column("n_obs", sa.Integer),
        sa.Column("data_start", sa.DateTime),
        sa.Column("data_end", sa.DateTime),
        sa.Column("trained_at", sa.DateTime),
        sa.Column("training_run_id", sa.String(64)),
        sa.Column("partition_key", sa.String(256), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("published_at", sa.DateTime, nullable=False),
    ]


def _metrics_table(metadata: sa.MetaData, id_columns: Sequence[str]) -> sa.Table:
    """The metrics of every series' latest model (a current-state table, replaced per partition)."""
    return documented(sa.Table(
        "model_metrics", metadata, *_metric_columns(id_columns),
        sa.Column("training_failed_at", sa.DateTime),
        sa.Column("training_error", sa.Text),
        sa.Column("held_since", sa.DateTime),
        sa.Column("held_problem", sa.Text),
        sa.PrimaryKeyConstraint(*id_columns, name="pk_model_metrics"),
        sa.Index("ix_model_metrics_partition", "partition_key"),
    ), id_columns)


def _metrics_history_table(metadata: sa.MetaData, id_columns: Sequence[str]) -> sa.Table:
    """The holdout metrics of every model version ever published (history: one row per series and version), so
    BI can follow a series' accuracy across retrains; ``model_metrics`` holds the latest only."""
    return documented(sa.Table(
        "model_metrics_history", metadata, *_metric_columns(id_columns),
        sa.PrimaryKeyConstraint(*id_columns, "version", name="pk_model_metrics_history"),
        sa.Index("ix_model_metrics_history_partition", "partition_key", "training_run_id"),
    ), id_columns)


def _decisions_table(metadata: sa.MetaData, id_columns: Sequence[str]) -> sa.Table:
    """Every promotion decision with its reason (history; replaced per partition and gate run)."""
    return documented(sa.Table(
        "promotion_decisions",
        metadata,
        *[sa.Column(c, sa.String(200), nullable=False) for c in id_columns],
        sa.Column("decision", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("challenger_version", sa.Integer),
        sa.Column("challenger_model_type", sa.String(64)),
        *[sa.Column(c, sa.Float) for c in ("challenger_accuracy", "challenger_mase", "challenger_wape")],
        sa.Column("champion_version", sa.Integer),
        sa.Column("champion_wape", sa.Float),
        sa.Column("decided_at", sa.DateTime, nullable=False),
        sa.Column("gate_run_id", sa.String(64), nullable=False),
        sa.Column("partition_key", sa.String(256), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("published_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint(*id_columns, "gate_run_id", name="pk_promotion_decisions"),
        sa.Index("ix_promotion_decisions_partition", "partition_key", "gate_run_id"),
    ), id_columns)


BACKTEST_SCOPES = ("series", "partition")
BACKTEST_COLUMNS = ("model_type", "scope", "horizon", "gap", "origins", "every", "n_points", "mape", "wape", "bias",
                    "mase", "mae", "naive_mae", "snaive_mae", "beats_naive", "beats_snaive", "series", "beat_naive_share",
                    "beat_snaive_share", "sum_abs_error", "sum_error", "sum_actual", "backtest_run_id")


def _backtest_table(metadata: sa.MetaData, id_columns: Sequence[str]) -> sa.Table:
    """Backtest accuracy (history of backtest runs; replaced per partition and backtest run).

    ``scope = 'series'``: one row per series and model type (ids set; ``beats_naive`` / ``beats_snaive`` 1 when
    its MAE is below the naive / seasonal-naive one). ``scope = 'partition'``: one row per model type pooled over
    the partition's series (ids ''; ``series`` and the ``beat_*_share`` columns set). MAPE, WAPE and bias are
    fractions (bias = Σ(forecast - actual) / Σ actual); the ``sum_*`` columns let any grouping be pooled again,
    within one scope (the partition rows pool the series rows; naive and seasonal_naive have partition rows only):
    WAPE = SUM(sum_abs_error) / SUM(sum_actual), bias = SUM(sum_error) / SUM(sum_actual).
    """
    return documented(sa.Table(
        "backtest_metrics",
        metadata,
        *[sa.Column(c, sa.String(200), nullable=False) for c in id_columns],
        sa.Column("model_type", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("horizon", sa.Integer, nullable=False),
        sa.Column("gap", sa.Integer, nullable=False),
        sa.Column("origins", sa.Integer),
        sa.Column("every", sa.Integer),
        sa.Column("n_points", sa.Integer),
        *[sa.Column(c, sa.Float) for c in ("mape", "wape", "bias", "mase", "mae", "naive_mae", "snaive_mae")],
        sa.Column("beats_naive", sa.Integer),
        sa.Column("beats_snaive", sa.Integer),
        sa.Column("series", sa.Integer),
        *[sa.Column(c, sa.Float) for c in ("beat_naive_share", "beat_snaive_share", "sum_abs_error", "sum_error",
                                           "sum_actual")],
        sa.Column("backtest_run_id", sa.String(64), nullable=False),
        sa.Column("partition_key", sa.String(256), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("published_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("partition_key", "backtest_run_id", "scope", "model_type", *id_columns,
                                name="pk_backtest_metrics"),
    ), id_columns)


ACCURACY_COLUMNS = ("origin", "ds", "lead", "model_type", "model_version", "model_source", "actual", "yhat",
                    "baseline_yhat")


def _accuracy_table(metadata: sa.MetaData, id_columns: Sequence[str]) -> sa.Table:
    """Realised accuracy: every published forecast point whose actual has arrived (history: a point is written
    when its actual arrives and rewritten while its period is among the newest judged ones). Pool with sums:
    WAPE = SUM(ABS(yhat - actual)) / SUM(actual), bias = SUM(yhat - actual) / SUM(actual), MASE vs the baseline =
    SUM(ABS(yhat - actual)) / SUM(ABS(baseline_yhat - actual)), by any of series, model_version, lead, origin or
    ds."""
    return documented(sa.Table(
        "forecast_accuracy",
        metadata,
        *[sa.Column(c, sa.String(200), nullable=False) for c in id_columns],
        sa.Column("origin", sa.DateTime, nullable=False),
        sa.Column("ds", sa.DateTime, nullable=False),
        sa.Column("lead", sa.Integer, nullable=False),
        sa.Column("model_type", sa.String(64), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("model_source", sa.String(16), nullable=False),
        sa.Column("actual", sa.Float, nullable=False),
        sa.Column("yhat", sa.Float, nullable=False),
        sa.Column("baseline_yhat", sa.Float),
        sa.Column("partition_key", sa.String(256), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("published_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint(*id_columns, "origin", "ds", name="pk_forecast_accuracy"),
        sa.Index("ix_forecast_accuracy_partition", "partition_key", "origin"),
    ), id_columns)


def _retired_table(metadata: sa.MetaData, id_columns: Sequence[str]) -> sa.Table:
    """Store partitions retired (``mm-assets retire-partition``): their rows in the other tables stay, as history,
    and a BI view of the current state leaves them out. A store that comes back is removed at its next publish."""
    return documented(sa.Table(
        "retired_partitions",
        metadata,
        sa.Column("partition_key", sa.String(256), nullable=False),
        sa.Column("retired_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("partition_key", name="pk_retired_partitions"),
    ), id_columns)


def _publish_log_table(metadata: sa.MetaData, id_columns: Sequence[str]) -> sa.Table:
    """One row per store partition and run that finished publishing it: written after the store's
    forecast_accuracy, the last table a publish writes, so a reader outside Dagster (a dashboard's refresh) can
    wait for a cycle to be whole in every store it shows."""
    return documented(sa.Table(
        "publish_log",
        metadata,
        sa.Column("partition_key", sa.String(256), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("origin", sa.DateTime),
        sa.Column("series", sa.Integer, nullable=False),
        sa.Column("published_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("partition_key", "run_id", name="pk_publish_log"),
        sa.Index("ix_publish_log_origin", "origin"),
    ), id_columns)


def table_definitions(id_columns: Sequence[str]) -> dict[str, sa.Table]:
    """Every warehouse table by name, defined on a fresh MetaData (no database touched): what the Dagster
    assets' column schemas are derived from."""
    metadata = sa.MetaData()
    tables = [make(metadata, list(id_columns)) for make in (_prediction_table, _metrics_table, _metrics_history_table,
                                                             _decisions_table, _backtest_table, _accuracy_table,
                                                             _retired_table, _publish_log_table)]
    return {table.name: table for table in tables}


CURRENT_FORECASTS = "current_forecasts"  # the view BI reads for "the forecast now"


def current_forecasts_select(predictions: sa.Table, retired: sa.Table, id_columns: Sequence[str]) -> sa.Select:
    """The rows of ``current_forecasts``: each series' forecast from its own newest origin, stores retired left out.
    Why per series, not per store: a series whose rows stopped a period early (a late week, a series held back) is
    forecast again from its own last period, and a view of the store's newest origin would lose its forecast."""
    ids = [predictions.c[c] for c in id_columns]
    newest = sa.select(*ids, sa.func.max(predictions.c.origin).label("origin")).group_by(*ids).subquery("newest")
    on = sa.and_(*[predictions.c[c] == newest.c[c] for c in id_columns], predictions.c.origin == newest.c.origin)
    return (sa.select(predictions).join(newest, on)
            .where(predictions.c.partition_key.not_in(sa.select(retired.c.partition_key))))


def create_view_sql(engine: sa.Engine, name: str, select: sa.Select) -> str:
    """``CREATE VIEW name AS select``, compiled for the engine's dialect (SQLite, PostgreSQL, Synapse)."""
    quoted = engine.dialect.identifier_preparer.quote(name)
    body = select.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
    return f"CREATE VIEW {quoted} AS {body}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


_VIEW_SEEN: set[str] = set()  # warehouses whose current_forecasts view this process has seen or created


class Warehouse:
    def __init__(self, url: str, id_columns: Sequence[str], read_only: bool = False):
        """``read_only``: for a report that only reads (``mm-assets promotion-report``): no table, column or view
        is created or migrated, so a report run after an upgrade, before the next cycle, leaves the warehouse as
        it found it and works on a read-only connection."""
        self.url = url
        self.read_only = read_only
        self.id_columns = list(id_columns)
        self.engine = engine_for(url)
        self.metadata = sa.MetaData()
        self.predictions = _prediction_table(self.metadata, self.id_columns)
        self.metrics = _metrics_table(self.metadata, self.id_columns)
        self.metrics_history = _metrics_history_table(self.metadata, self.id_columns)
        self.decisions = _decisions_table(self.metadata, self.id_columns)
        self.backtest = _backtest_table(self.metadata, self.id_columns)
        self.accuracy = _accuracy_table(self.metadata, self.id_columns)
        self.retired = _retired_table(self.metadata, self.id_columns)
        self.publish_log = _publish_log_table(self.metadata, self.id_columns)
        if read_only:
            return
        self._check_existing_schema()
        self.metadata.create_all(self.engine)
        if url in _VIEW_SEEN or self._has_view():  # each publish constructs one: two catalogue queries, once
            _VIEW_SEEN.add(url)
            return
        try:
            with self.engine.begin() as conn:
                conn.exec_driver_sql(create_view_sql(self.engine, CURRENT_FORECASTS, current_forecasts_select(
                    self.predictions, self.retired, self.id_columns)))
        except sa.exc.DBAPIError:
            if not self._has_view():  # else another process created it first
                raise
        _VIEW_SEEN.add(url)

    def _has_view(self) -> bool:
        inspector = sa.inspect(self.engine)
        return CURRENT_FORECASTS in inspector.get_view_names() or inspector.has_table(CURRENT_FORECASTS)

    def _check_existing_schema(self) -> None:
        """Tables are created and migrated by the project: a column this version adds is added to an existing
        table (nullable, ALTER TABLE ADD COLUMN); a table whose key columns or other columns differ is reported,
        never altered silently."""
        inspector = sa.inspect(self.engine)
        for table in self.metadata.tables.values():  # in definition order: forecast_predictions first
            if not inspector.has_table(table.name):
                continue
            have = {c["name"] for c in inspector.get_columns(table.name)}
            want = {c.name for c in table.columns}
            unknown, missing = have - want, want - have
            key_missing = {c.name for c in table.primary_key.columns} & missing
            if unknown or key_missing:
                raise RuntimeError(
                    f"warehouse table {table.name} has columns {sorted(have)}, expected {sorted(want)} "
                    "(columns.ids changed?). Point storage.warehouse at a new database or migrate the table."
                )
            if missing:
                preparer = self.engine.dialect.identifier_preparer
                with self.engine.begin() as conn:
                    for name in sorted(missing):
                        column = table.c[name]
                        col_type = column.type.compile(dialect=self.engine.dialect)
                        conn.execute(sa.text(
                            f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN {preparer.quote(name)} {col_type}"
                        ))

    def publish_partition(
        self,
        partition_key: str,
        run_id: str,
        predictions: pd.DataFrame,
        metrics: pd.DataFrame | None = None,
        decisions: pd.DataFrame | None = None,
        missed: pd.DataFrame | None = None,
        keep_from: dt.datetime | None = None,
        in_data: pd.DataFrame | None = None,
    ) -> dict[str, int]:
        """Publish one store partition's three tables in ONE transaction (all or nothing).

        forecast_predictions: the partition's rows for the same origins are replaced; model_metrics: the
        partition's rows are replaced; promotion_decisions: the partition's rows of the same gate runs are
        replaced. Re-publishing is therefore idempotent, and a crash leaves the previous rows intact.
        ``missed``: metrics of versions trained since the history's newest but no longer the latest (runs whose
        publish never came), written to model_metrics_history beside the latest ones. ``keep_from``
        (``storage.forecast_retention_days``: ``retention_cutoff``): the partition's forecast_predictions rows of
        older origins are deleted in the same transaction (``pruned_forecast_predictions`` in the counts).
        ``in_data``: the ids of the series in the store's dataset; a series with rows at the origin published that
        is no longer among them (gone from the source since a publish from the same origin) has those rows deleted
        (``left_the_data`` in the counts), where a series still in the data but not published now (its scoring
        failed) keeps them.
        """
        now = _now()
        counts = {}
        with self.engine.begin() as conn:
            conn.execute(self.retired.delete().where(self.retired.c.partition_key == partition_key))  # came back
            counts["forecast_predictions"], left = self._replace_predictions(
                conn, predictions, partition_key, run_id, now, in_data)
            if in_data is not None:
                counts["left_the_data"] = left
            if keep_from is not None:
                counts["pruned_forecast_predictions"] = _prune(conn, self.predictions, partition_key, keep_from)
            if metrics is not None:
                latest_only = [c for c in LATEST_ONLY_COLUMNS if c in metrics.columns]
                m = metrics[[*self.id_columns, *METRIC_COLUMNS]].assign(
                    partition_key=partition_key, run_id=run_id, published_at=now
                )
                conn.execute(self.metrics.delete().where(self.metrics.c.partition_key == partition_key))
                insert_frame(conn, self.metrics, m.join(metrics[latest_only]))
                counts["model_metrics"] = len(m)
                # history: the same (series, version) rows replaced, every other version kept
                history = self.metrics_history
                key = sa.tuple_(*[history.c[c] for c in self.id_columns], history.c.version)
                if missed is not None and len(missed):
                    m = pd.concat([m, missed[[*self.id_columns, *METRIC_COLUMNS]].assign(
                        partition_key=partition_key, run_id=run_id, published_at=now)], ignore_index=True
                    ).drop_duplicates([*self.id_columns, "version"])
                pairs = [tuple(r) for r in m[[*self.id_columns, "version"]].astype(object).itertuples(index=False)]
                for chunk in in_chunks([(*p[:-1], int(p[-1])) for p in pairs], 400):
                    conn.execute(history.delete().where(key.in_(list(chunk))))
                insert_frame(conn, history, m)
            if decisions is not None:
                d = decisions[[*self.id_columns, *DECISION_COLUMNS]].assign(
                    partition_key=partition_key, run_id=run_id, published_at=now
                )
                runs = sorted(set(d["gate_run_id"]))
                if runs:
                    conn.execute(
                        self.decisions.delete()
                        .where(self.decisions.c.partition_key == partition_key)
                        .where(self.decisions.c.gate_run_id.in_(runs))
                    )
                insert_frame(conn, self.decisions, d)
                counts["promotion_decisions"] = len(d)
        return counts

    def _replace_predictions(self, conn, frame: pd.DataFrame, partition_key: str, run_id: str, now,
                             in_data: pd.DataFrame | None = None) -> tuple[int, int]:
        cols = [*self.id_columns, *PREDICTION_COLUMNS]
        frame = with_prediction_defaults(frame)
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"predictions lack columns {missing}")
        data = frame[cols].copy()
        data["partition_key"] = partition_key
        data["run_id"] = run_id
        data["published_at"] = now
        data["model_version"] = data["model_version"].astype(int)
        table = self.predictions
        deletes, left = prediction_deletes(conn, table, partition_key, data, self.id_columns, in_data)
        for delete in deletes:
            conn.execute(delete)
        return insert_frame(conn, table, data), left

    def publish_backtest(self, partition_key: str, run_id: str, metrics: pd.DataFrame) -> int:
        """Replace the partition's ``backtest_metrics`` rows of the backtest runs in ``metrics``; one transaction.

        ``metrics``: rows with ``BACKTEST_COLUMNS`` (missing ones are null) and the id columns ('' on partition
        rows). Re-publishing the same backtest run replaces its rows; other runs' rows stay (history).
        """
        data = metrics.copy()
        for col in BACKTEST_COLUMNS:
            if col not in data.columns:
                data[col] = None
        for col in self.id_columns:
            data[col] = data[col].fillna("").astype(str) if col in data.columns else ""
        bad = set(data["scope"]) - set(BACKTEST_SCOPES)
        if bad:
            raise ValueError(f"backtest_metrics scope must be one of {BACKTEST_SCOPES}, got {sorted(bad)}")
        for col in ("beats_naive", "beats_snaive"):
            data[col] = data[col].map(lambda v: None if v is None or pd.isna(v) else int(bool(v)))
        data = data[[*self.id_columns, *BACKTEST_COLUMNS]].assign(
            partition_key=partition_key, run_id=run_id, published_at=_now()
        )
        runs = sorted(set(data["backtest_run_id"]))
        table = self.backtest
        with self.engine.begin() as conn:
            if runs:
                conn.execute(table.delete().where(table.c.partition_key == partition_key)
                             .where(table.c.backtest_run_id.in_(runs)))
            insert_frame(conn, table, data)
        return len(data)

    def publish_accuracy(self, partition_key: str, run_id: str, points: pd.DataFrame,
                         judged: tuple[dt.datetime, dt.datetime] | None = None,
                         present: pd.DataFrame | None = None,
                         keep_from: dt.datetime | None = None) -> tuple[int, int]:
        """Replace the partition's ``forecast_accuracy`` rows in one transaction: with ``judged`` = (origin_from,
        ds_from), every row of an origin and a period at or after those (what the caller judged anew, even the
        points that no longer have an actual); without it, every row of the origins in ``points``. ``present``:
        the ids of the series the store's data still hold; the judged rows of the others are kept as they were
        (a series gone from the source cannot be judged anew: deleting its rows would erase its record).
        ``keep_from`` (``storage.forecast_retention_days``): the partition's rows of older origins are deleted in the
        same transaction. Returns (rows written, rows deleted for ``keep_from``)."""
        data = points[[*self.id_columns, *ACCURACY_COLUMNS]].assign(
            partition_key=partition_key, run_id=run_id, published_at=_now())
        data["model_version"] = data["model_version"].astype(int)
        data["lead"] = data["lead"].astype(int)
        table = self.accuracy
        with self.engine.begin() as conn:
            if judged is not None:
                spans = [(table.c.partition_key == partition_key, table.c.origin >= judged[0],
                          table.c.ds >= judged[1])]
            else:
                spans = [(table.c.partition_key == partition_key, table.c.origin.in_(list(chunk)))
                         for chunk in in_chunks(forecast_origins(data), 500)]
            present_ids = None if present is None else present[self.id_columns].drop_duplicates().astype(str)
            for span in spans:
                self._delete_judged_anew(conn, span, present_ids)
            insert_frame(conn, table, data)
            pruned = 0 if keep_from is None else _prune(conn, table, partition_key, keep_from)
        return len(data), pruned

    def record_published(self, partition_key: str, run_id: str, keep_from: dt.datetime | None = None) -> None:
        """Record in ``publish_log`` that ``run_id`` finished publishing the store (again: replaced), with the
        store's newest origin in forecast_predictions and how many series have a forecast from it. Called once the
        store's forecast_accuracy is written, so a row means the store's tables are whole. ``keep_from``
        (``storage.forecast_retention_days``): the store's rows of older origins are deleted with it."""
        p, log = self.predictions, self.publish_log
        with self.engine.begin() as conn:
            origin = conn.execute(sa.select(sa.func.max(p.c.origin)).where(p.c.partition_key == partition_key)).scalar()
            series = 0
            if origin is not None:
                ids = (sa.select(*(p.c[c] for c in self.id_columns))
                       .where(p.c.partition_key == partition_key, p.c.origin == origin).distinct().subquery())
                series = int(conn.execute(sa.select(sa.func.count()).select_from(ids)).scalar_one())
            conn.execute(log.delete().where(log.c.partition_key == partition_key, log.c.run_id == run_id))
            conn.execute(log.insert().values(partition_key=partition_key, run_id=run_id, origin=origin, series=series,
                                             published_at=_now()))
            if keep_from is not None:
                conn.execute(log.delete().where(log.c.partition_key == partition_key, log.c.origin < keep_from,
                                                log.c.run_id != run_id))

    def _delete_judged_anew(self, conn, span: tuple, present: pd.DataFrame | None) -> None:
        """Delete the ``forecast_accuracy`` rows in ``span`` of the series among ``present`` (their ids, once
        each, as text; None: all)."""
        t = self.accuracy
        if present is not None:
            stored = pd.read_sql(sa.select(*(t.c[c] for c in self.id_columns)).where(*span).distinct(), conn)
            anew = stored.merge(present, on=self.id_columns)
            if len(anew) < len(stored):  # some series are gone from the data: delete only the others' rows
                for chunk in in_chunks(list(anew.itertuples(index=False, name=None)), SERIES_PER_DELETE):
                    conn.execute(t.delete().where(*span, any_series(t, self.id_columns, chunk)))
                return
        conn.execute(t.delete().where(*span))

    def newest_in_history(self, partition_keys: Sequence[str]) -> dict[str, dt.datetime]:
        """The newest ``trained_at`` of model_metrics_history per partition (those without a row are left out):
        where the next publish's missed versions start (``ModelRegistry.trained_after``)."""
        return self._newest_per_partition(self.metrics_history.c.trained_at, partition_keys)

    def newest_decided(self, partition_keys: Sequence[str]) -> dict[str, dt.datetime]:
        """The newest ``decided_at`` published per partition (partitions without a published decision are left
        out): where the next publish's decisions pick up."""
        return self._newest_per_partition(self.decisions.c.decided_at, partition_keys)

    def _newest_per_partition(self, column: sa.Column, partition_keys: Sequence[str]) -> dict[str, dt.datetime]:
        """The highest ``column`` (a time) of its table per partition, those without a value left out."""
        t = column.table
        out: dict[str, dt.datetime] = {}
        with self.engine.connect() as conn:
            for chunk in in_chunks(list(partition_keys), 900):
                q = sa.select(t.c.partition_key, sa.func.max(column)).where(
                    t.c.partition_key.in_(chunk)).group_by(t.c.partition_key)
                out.update({k: pd.Timestamp(v).to_pydatetime() for k, v in conn.execute(q) if v is not None})
        return out

    def accuracy_through(self, partition_key: str) -> tuple[dt.datetime | None, dt.datetime | None]:
        """(the newest period of the partition with a judged forecast point, when it was judged; UTC), both None
        before the first."""
        t = self.accuracy
        with self.engine.connect() as conn:  # the newest origin first: the index finds it without a scan
            origin = conn.execute(sa.select(sa.func.max(t.c.origin)).where(t.c.partition_key == partition_key)).scalar()
            if origin is None:
                return None, None
            newest, judged_at = conn.execute(sa.select(sa.func.max(t.c.ds), sa.func.max(t.c.published_at)).where(
                t.c.partition_key == partition_key, t.c.origin == origin)).one()
        return pd.Timestamp(newest).to_pydatetime(), pd.Timestamp(judged_at).to_pydatetime()

    def accuracy_sums(self, partition_key: str, origin_from: dt.datetime, ds_after: dt.datetime) -> pd.DataFrame:
        """The partition's judged points of periods after ``ds_after`` (and origins from ``origin_from``), summed
        per series, model version and source: points, sum_actual, sum_abs_error, sum_error,
        sum_baseline_abs_error, first_ds, last_ds. The database sums; the points stay where they are."""
        t = self.accuracy
        keys = [*[t.c[c] for c in self.id_columns], t.c.model_version, t.c.model_source]
        q = (sa.select(*keys, sa.func.count().label("points"), sa.func.sum(t.c.actual).label("sum_actual"),
                       sa.func.sum(sa.func.abs(t.c.yhat - t.c.actual)).label("sum_abs_error"),
                       sa.func.sum(t.c.yhat - t.c.actual).label("sum_error"),
                       sa.func.sum(sa.func.abs(t.c.baseline_yhat - t.c.actual)).label("sum_baseline_abs_error"),
                       sa.func.min(t.c.ds).label("first_ds"), sa.func.max(t.c.ds).label("last_ds"))
             .where(t.c.partition_key == partition_key, t.c.origin >= origin_from, t.c.ds > ds_after)
             .group_by(*keys))
        with self.engine.connect() as conn:
            out = pd.read_sql(q, conn)
        for col in ("first_ds", "last_ds"):
            out[col] = pd.to_datetime(out[col])
        return out

    def newest_judged(self) -> dt.datetime | None:
        """The newest period with a judged forecast point in any partition (None before the first)."""
        with self.engine.connect() as conn:
            newest = conn.execute(sa.select(sa.func.max(self.accuracy.c.ds))).scalar()
        return None if newest is None else pd.Timestamp(newest).to_pydatetime()

    def champion_vs_baseline(self, since: dt.datetime) -> pd.DataFrame:
        """Per store partition, over the champions' realised points from ``since`` on: the summed absolute
        errors of the champions and of the baseline on the same days, their ratio (MASE vs the baseline), the
        points and the periods they fall on."""
        t = self.accuracy
        q = (sa.select(t.c.partition_key,
                       sa.func.sum(sa.func.abs(t.c.yhat - t.c.actual)).label("abs_error"),
                       sa.func.sum(sa.func.abs(t.c.baseline_yhat - t.c.actual)).label("baseline_abs_error"),
                       sa.func.count().label("points"), sa.func.count(sa.distinct(t.c.ds)).label("periods"))
             .where(t.c.model_source == "champion", t.c.ds >= since, t.c.baseline_yhat.isnot(None))
             .group_by(t.c.partition_key))
        with self.engine.connect() as conn:
            out = pd.read_sql(q, conn)
        out["mase_vs_baseline"] = (out["abs_error"] / out["baseline_abs_error"]).where(out["baseline_abs_error"] > 0)
        return out.set_index("partition_key")

    def read_predictions(self, partition_keys: Sequence[str] | None = None,
                         since: dt.datetime | None = None, ds_from: dt.datetime | None = None,
                         ds_to: dt.datetime | None = None) -> pd.DataFrame:
        """Published forecasts (of the given partitions; of origins at or after ``since``; of periods from
        ``ds_from`` to ``ds_to``)."""
        q = sa.select(self.predictions)
        if partition_keys is not None:
            q = q.where(self.predictions.c.partition_key.in_(list(partition_keys)))
        if since is not None:
            q = q.where(self.predictions.c.origin >= since)
        if ds_from is not None:
            q = q.where(self.predictions.c.ds >= ds_from)
        if ds_to is not None:
            q = q.where(self.predictions.c.ds <= ds_to)
        with self.engine.connect() as conn:
            return pd.read_sql(q, conn)

    def newest_predictions(self, partition_keys: Sequence[str], columns: Sequence[str] = ("origin", "model_source")
                           ) -> pd.DataFrame:
        """Each series' rows of its newest origin (ids and ``columns``), chunks of partitions at a time: what is
        served now, without the rows of every earlier day (a year of daily forecasts is 365 times as many)."""
        t = self.predictions
        ids = [t.c[c] for c in self.id_columns]
        frames = []
        with self.engine.connect() as conn:
            for chunk in in_chunks(list(partition_keys), 900):
                newest = (sa.select(*ids, sa.func.max(t.c.origin).label("newest"))
                          .where(t.c.partition_key.in_(chunk)).group_by(*ids).subquery())
                q = (sa.select(*ids, *(t.c[c] for c in columns))
                     .join(newest, sa.and_(*(t.c[c] == newest.c[c] for c in self.id_columns),
                                           t.c.origin == newest.c.newest))
                     .where(t.c.partition_key.in_(chunk)))
                frames.append(pd.read_sql(q, conn))
        return (pd.concat(frames, ignore_index=True) if frames
                else pd.DataFrame(columns=[*self.id_columns, *columns]))

    def record_retired(self, partition_keys: Sequence[str]) -> None:
        """Record store partitions as retired now (again: the time of the newest retirement)."""
        now = _now()
        with self.engine.begin() as conn:
            conn.execute(self.retired.delete().where(self.retired.c.partition_key.in_(list(partition_keys))))
            insert_frame(conn, self.retired, pd.DataFrame({"partition_key": list(partition_keys), "retired_at": now}))

    def current_forecasts(self) -> pd.DataFrame:
        """The ``current_forecasts`` view, as BI reads it."""
        with self.engine.connect() as conn:
            return pd.read_sql(sa.text(f"SELECT * FROM {self.engine.dialect.identifier_preparer.quote(CURRENT_FORECASTS)}"),
                               conn)

    def retired_partitions(self) -> list[str]:
        """The store partitions recorded as retired (and not published since)."""
        if self.read_only and not sa.inspect(self.engine).has_table(self.retired.name):
            return []  # a warehouse of a version before retirement was recorded, not yet migrated by a cycle
        with self.engine.connect() as conn:
            return sorted(conn.execute(sa.select(self.retired.c.partition_key)).scalars())

    def read_table(self, name: str, partition_keys: Sequence[str] | None = None) -> pd.DataFrame:
        table = self.metadata.tables[name]
        q = sa.select(table)
        if partition_keys is not None:
            q = q.where(table.c.partition_key.in_(list(partition_keys)))
        with self.engine.connect() as conn:
            return pd.read_sql(q, conn)

    def horizon_rows(self, partition_key: str, origins: Sequence) -> pd.DataFrame:
        """Forecast rows per series and origin of one partition, for the given origins: what BI reads back."""
        t = self.predictions
        ids = [t.c[c] for c in self.id_columns]
        when = [pd.Timestamp(o).to_pydatetime() for o in origins]
        q = (sa.select(*ids, t.c.origin, sa.func.count().label("rows"))
             .where(t.c.partition_key == partition_key, t.c.origin.in_(when)).group_by(*ids, t.c.origin))
        with self.engine.connect() as conn:
            return pd.read_sql(q, conn)

    def count(self, table: str = "forecast_predictions") -> int:
        t = self.metadata.tables[table]
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
