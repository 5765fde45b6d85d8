"""Project settings: one YAML file, validated once, overridable from the environment.

Why one file: a user brings their own data by editing a single place (source, column mapping, frequency,
horizon, model, storage locations, runner), and the same file drives the local laptop run and the Azure run.
Every field has a default that matches the embedded demo, so no file is needed to start.

Resolution order (later wins):
  1. built-in defaults (the demo's),
  2. the YAML file at ``$MM_ASSETS_SETTINGS`` (or ``./mm_assets.yaml`` if it exists),
  3. environment variables ``MM_ASSETS__SECTION__FIELD`` (e.g. ``MM_ASSETS__STORAGE__LAKE=abfs://...``),
     values parsed as YAML scalars/lists.

This module does not import Dagster: the Azure ML job image loads it too.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import os
import re
import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mm_assets.forecasting.model_types import (
    AUTO,
    GLOBAL_TYPES,
    MODEL_TYPES,
    PER_SERIES_TYPES,
    ModelType,
    params_problems,
)
from mm_assets.forecasting.series import DAY, WEEK
from mm_assets.sql import url_problem

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

SETTINGS_ENV = "MM_ASSETS_SETTINGS"
ENV_PREFIX = "MM_ASSETS__"
DEFAULT_SETTINGS_FILE = "mm_assets.yaml"


WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")  # pandas' weekly anchors, in Dagster's day_offset order

# ---- cron: the forms Dagster's schedules accept, checked without importing Dagster (the job image has none) ----
CRON_ALIASES = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, lowest, highest, names numbered from lowest)
CRON_FIELDS = (("minute", 0, 59, ()), ("hour", 0, 23, ()), ("day of month", 1, 31, ()),
               ("month", 1, 12, _MONTHS), ("day of week", 0, 7, _DAYS))


def _cron_value(text: str, field: int) -> int | None:
    """A field's number or name (jan, mon: case-insensitive) as its number; None when it is neither or out of
    range."""
    _, low, high, names = CRON_FIELDS[field]
    if text.lower() in names:
        return names.index(text.lower()) + low
    if not text.isdigit():
        return None
    number = int(text)
    return number if low <= number <= high else None


def _cron_item(item: str, field: int) -> set[int] | None:
    """The values one comma-separated item of a field stands for (a value, a-b, */n, a-b/n; ? and L where cron
    allows them; n#k and Ln in the day of week); None when the item is not valid. Wildcards stand for every
    value; only exact single values matter to the caller (the 30th of February)."""
    _, low, high, _ = CRON_FIELDS[field]
    every = set(range(low, high + 1))
    base, slash, step = item.partition("/")
    if slash and not (step.isdigit() and int(step) >= 1):
        return None
    if base == "*":
        return every
    if slash and base.upper() in ("?", "L"):
        return None
    if base == "?" and field in (2, 4):
        return every
    if field == 2 and base.upper() == "L":
        return every
    if field == 4 and not slash:
        day, hash_, nth = base.partition("#")
        if hash_:
            return every if _cron_value(day, 4) is not None and nth.isdigit() and 1 <= int(nth) <= 5 else None
        if base[:1].upper() == "L" and base[1:].isdigit():
            return every if _cron_value(base[1:], 4) is not None else None
    first, dash, last = base.partition("-")
    start = _cron_value(first, field)
    if not dash:
        return None if start is None else ({start} if not slash else every)
    end = high if field == 2 and last.upper() == "L" else _cron_value(last, field)
    return None if start is None or end is None else every


def cron_problem(expression: str) -> str | None:
    """What is wrong with a cron expression, or None when Dagster's schedules accept it: five fields (minute,
    hour, day of month, month, day of week) or an alias such as @daily; no seconds field, no 30th or 31st of
    February. The tests check this against Dagster's own validation."""
    text = expression.strip()
    if text.startswith("@"):
        return None if text.lower() in CRON_ALIASES else f"the aliases are {', '.join(CRON_ALIASES)}"
    fields = text.split()
    if len(fields) != len(CRON_FIELDS):
        return f"it has {len(fields)} fields, cron has {len(CRON_FIELDS)} (minute hour day-of-month month day-of-week)"
    values = []
    for index, (field, (name, low, high, names)) in enumerate(zip(fields, CRON_FIELDS)):
        items = [_cron_item(item, index) for item in field.split(",")]
        if any(v is None for v in items):
            allowed = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
            return f"{name} {field!r} is not valid ({allowed}, *, a-b, */n or a list a,b)"
        values.append(set().union(*items))
    if values[3] == {2} and values[2] in ({30}, {31}):
        return "February has no 30th or 31st"
    return None


class SettingsError(ValueError):
    """A settings problem, phrased so the user knows which field to change and how."""


def _not_a_yes_no(value: Any) -> Any:
    """Refuse true/false where a number is meant: pydantic would read ``horizon: true`` as 1 and
    ``min_accuracy: yes`` as 1.0, a silent setting the user never wrote."""
    if isinstance(value, bool):
        raise ValueError(f"{str(value).lower()} is a yes/no value, not a number: write the number meant")
    return value


def _a_list_not_one_name(value: Any) -> Any:
    """Refuse one name where a list of names is meant (``ids: store``): pydantic says only "Input should be a
    valid list", without the form that works."""
    if isinstance(value, str):
        names = [name.strip() for name in value.split(",") if name.strip()]
        raise ValueError(f"{value!r} is text, and this is a list of column names: write [{', '.join(names)}]")
    return value


Names = Annotated[list[str], BeforeValidator(_a_list_not_one_name)]
Int = Annotated[int, BeforeValidator(_not_a_yes_no)]
Float = Annotated[float, BeforeValidator(_not_a_yes_no)]


def _usable_url(value: str) -> str:
    """Refuse a database URL that cannot work (``sql.url_problem``) when the settings are read."""
    problem = url_problem(value)
    if problem:
        raise ValueError(problem)
    return value


DatabaseUrl = Annotated[str, AfterValidator(_usable_url)]


class _Section(BaseModel):
    # Values from YAML or the environment may arrive as numbers or dates where a string is meant
    # (``table: 2024``, ``start_date: 2024-01-01``): accept them as the text the user wrote.
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class SourceSettings(_Section):
    """Where raw sales come from: any SQLAlchemy URL plus a table or a query."""

    url: DatabaseUrl = Field(default="sqlite:///data/source.db", description="SQLAlchemy URL of the source database.")
    table: str = Field(default="sales", description="Table read with WHERE <timestamp> >= :start AND < :end.")
    query: str | None = Field(
        default=None,
        description="Optional SELECT used instead of `table`; must accept :start and :end bind parameters "
        "(inclusive start, exclusive end) on the timestamp column.",
    )

    @field_validator("query")
    @classmethod
    def _query_reads_a_window(cls, value: str | None) -> str | None:
        """A query without both bounds returned every row for every slice of a backfill: the rows were filed
        under the slices' first and last periods, several times over, with no error."""
        if value is None:
            return value
        missing = [name for name in ("start", "end") if not re.search(rf"(?<![\w:]):{name}\b", value)]
        if missing:
            raise ValueError(
                f"source.query does not use {' and '.join(':' + m for m in missing)}: the ingest reads the source "
                "one window of periods at a time and the query must return only that window's rows, e.g. "
                "SELECT ... FROM sales WHERE date >= :start AND date < :end")
        return value


class ColumnSettings(_Section):
    """Mapping from the source's column names to the roles the pipeline needs."""

    timestamp: str = Field(default="date", description="Observation date (daily) or week start (weekly).")
    ids: Names = Field(default_factory=lambda: ["store", "item"],
                           description="Id columns: one model per distinct combination (the model grain).")
    target: str = Field(default="sales", description="Target; must be >= 0; may be empty only on planned future "
                        "rows.")
    regressors: Names = Field(
        default_factory=lambda: ["price", "promo"],
        description="Numeric regressors, each entering the models in the form right for its kind (0/1 flags, "
        "shares, positive price-like, signed), decided from the training data; in the future, flags default to 0 (no "
        "promotion), shares to their median over the last season, others keep their last value, unless a plan row "
        "gives them.",
    )

    @model_validator(mode="after")
    def _distinct(self) -> ColumnSettings:
        names = [self.timestamp, self.target, *self.ids, *self.regressors]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"columns: each source column may have one role only; repeated: {dupes}")
        if not self.ids:
            raise ValueError("columns.ids: at least one id column is required (e.g. [store, item])")
        taken = sorted(name for name in self.ids if name.lower() in _warehouse_columns())
        if taken:
            first = taken[0]
            raise ValueError(
                f"columns.ids: {', '.join(repr(n) for n in taken)} {'is' if len(taken) == 1 else 'are'} also the "
                "name of a column the warehouse writes beside the ids (its tables key every row by the ids and add "
                "their own columns); rename the id in source.query, e.g. SELECT ..., "
                f"{first} AS {first}_id ... with columns.ids naming {first}_id")
        return self


@functools.cache
def _warehouse_columns() -> frozenset[str]:
    """The warehouse's own column names (lower case: SQLite compares names so), which an id column may not take."""
    from mm_assets.warehouse.warehouse import table_definitions

    return frozenset(c.name.lower() for table in table_definitions([]).values() for c in table.columns)


class PartitionSettings(_Section):
    """The Dagster batch grain. Partitions are groups of series, never single series (per-series partitions do not scale in Dagster's bookkeeping)."""

    column: str = Field(default="store", description="Id column whose value names the Dagster partition.")
    buckets: Int = Field(
        default=0,
        ge=0,
        le=100_000,
        description="0: one partition per value of `column`. N>0: partition = stable hash bucket of the value "
        "(use when the column has hundreds of values or more: 2,500 stores took 50 minutes a cycle as 2,500 "
        "partitions, 4 minutes as 32 buckets; the ingest and `mm-assets cycle` warn past 20 runs of a job).",
    )

    @property
    def values_name_files(self) -> bool:
        """Whether a store's files are named by its value of ``column`` (``datasets/<store>.parquet``): then the
        value must be a valid file and blob name everywhere the lake may live; with hash buckets the bucket names
        them. The ingest's id check, its held-back records and its store-name refusals all ask this."""
        return self.buckets == 0


# the choices, from the one list of model type names (a Literal over a tuple is the Literal of its values)
AutoCandidate = Literal[PER_SERIES_TYPES]  # type: ignore[valid-type]
ModelChoice = Literal[(*MODEL_TYPES, AUTO)]  # type: ignore[valid-type]


class ModelSettings(_Section):
    type: ModelChoice = Field(
        default=ModelType.LIGHTGBM.value,
        description="The model of every series: lightgbm (one gradient-boosted model across every series of a "
        "run), linear (ridge per series), ets, prophet, baseline (best of naive, seasonal naive and moving "
        "averages per series), seasonal_naive, or auto (best per-series candidate by backtest). The default, lightgbm, "
        "had the lowest backtest error on every real retail data set measured (docs/models.md).",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Options of the model type (docs/models.md); for `auto`, options per candidate: {linear: "
        "{alpha: 2}, ...}. An option the model type does not read, or a value of the wrong kind, is refused when "
        "the settings load (naming the closest option).",
    )
    auto_candidates: list[AutoCandidate] = Field(
        default_factory=lambda: ["baseline", "linear", "ets"],
        min_length=1,
        description="`auto`: the model types compared per series (rolling-origin backtest on its own history).",
    )
    auto_origins: Int = Field(
        default=3, ge=1, le=50, description="`auto`: rolling origins of the per-series comparison backtest."
    )
    min_train_periods: Int | None = Field(
        default=None,
        ge=1, json_schema_extra={"doc_default": "horizon + gap + 30 (lightgbm: 7 daily, 4 weekly)"},
        description="Shortest training history in periods (not counting the holdout horizon) for the configured "
        "model; shorter series are served by their baseline. Default: horizon + gap + 30, so that at least 30 "
        "rows with real lags fit a per-series model; for lightgbm (one model learnt across series: a new item "
        "borrows what the model learnt from the same item in other stores) a week of days or a month of weeks.",
    )
    envelope_multiple: Float = Field(
        default=3.0,
        gt=1,
        description="Sanity envelope: a forecast above this multiple of the series' largest value of its last "
        "year, or of its last four seasons when they are longer (208 weeks for weekly data with a yearly season), "
        "or below 0, or not finite, is replaced by the series' baseline and recorded.",
    )
    global_context_rows: Int = Field(
        default=2_000_000,
        ge=0,
        description="A global model (lightgbm) whose training run holds fewer rows than this (counted as "
        "schedule.rows_per_run counts them: those its training reads) learns from "
        "other stores' series too (their newest datasets, none before a store's first cut: whole stores, in "
        "partition order, while the rows fit this and schedule.rows_per_run); it registers and serves models for the run's own series only. Why: a "
        "one-store run from the Dagster UI, or a cycle cut into small runs, would otherwise fit a model to a "
        "handful of series (cheese, one series a store: WAPE 20.3 % learnt in runs of 25 stores, 19.1 % in one "
        "run of all 88). 0: each run learns from its own series only.",
    )

    @model_validator(mode="after")
    def _known_params(self) -> ModelSettings:
        """Refuse options the model type does not read (a typo would train with the defaults, silently) and values
        of the wrong kind, here and not by every series of a run; each line names its field (``model.params.<key>``),
        the model type and the valid keys."""
        problems = params_problems(self.type, self.params, self.auto_candidates)
        if self.type == ModelType.LIGHTGBM:
            from mm_assets.forecasting.lightgbm_options import CHOICE_OPTIONS, model_options

            try:  # an unknown objective, refit or linear_tree names the field and the choices
                model_options({k: v for k, v in self.params.items() if k in CHOICE_OPTIONS})
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError("\n".join(problems))
        return self


class StorageSettings(_Section):
    lake: str = Field(default="data/lake", description="Lake root: a local folder or any fsspec URI "
                      "(abfs://<container>@<account>.dfs.core.windows.net/<path> for ADLS Gen2).")
    registry: DatabaseUrl = Field(default="sqlite:///data/registry.db", description="SQLAlchemy URL of the model registry "
                          "(SQLite or postgresql+psycopg2://...: name the driver, plain postgresql:// is refused).")
    warehouse: DatabaseUrl = Field(default="sqlite:///data/warehouse.db", description="SQLAlchemy URL of the warehouse: SQLite, "
                           "postgresql+psycopg2://..., Synapse mssql+pyodbc://... (pyodbc and Microsoft's ODBC "
                           "driver installed beside the project).")
    production_registry: DatabaseUrl = Field(
        default="sqlite:///data/production.db",
        description="SQLAlchemy URL of the production registry (champions and promotion decisions); only the "
        "promotion gate writes it.",
    )
    model_retention_days: Int | None = Field(
        default=None, ge=1,
        description="Model versions trained more than this many days ago are deleted with their bundle files "
        "when a store is trained, except each series' latest and its current champion's, as are older bundle files "
        "no version points at (a training run stopped before it registered them), and the gate deletes "
        "the production copies of champions replaced that long ago; null keeps everything (at 100,000 series a "
        "day of lightgbm adds ~150 MB to the lake and 100,000 registry rows).",
    )
    forecast_retention_days: Int | None = Field(
        default=None, ge=1,
        description="Warehouse rows of forecast_predictions and forecast_accuracy whose origin is more than this "
        "many days before their store's newest are deleted when the store is published (a series whose newest "
        "origin is that old leaves current_forecasts); at least (2 x horizon + operations.accuracy_window) periods, "
        "what forecast_accuracy reads back. Null keeps every row (at 100,000 daily series with horizon 28, each "
        "day adds 2.8 million rows to each table).",
    )
    run_retention_days: Int | None = Field(
        default=30, ge=1,
        description="Dagster runs that ended more than this many days ago are deleted (by each `mm-assets cycle` "
        "and hourly by the prune_runs sensor), except those holding some partition's newest materialization or "
        "some check's newest result: the UI shows the same partitions and checks, and the instance stops growing "
        "(on SQLite a full cycle adds ~20 KB per period of history and ~250 KB per store partition). Null keeps "
        "every run (Dagster's own default); `mm-assets prune-runs --older-than N` does it once.",
    )


class RunnerSettings(_Section):
    """How the per-series fan-out runs. Field names follow Azure ML parallel-job settings."""

    kind: Literal["local", "azureml"] = Field(
        default="local", description="local: a process pool on this machine; azureml: Azure ML parallel jobs "
        "(docs/azure.md).")
    max_concurrency: Int = Field(default=0, ge=0, json_schema_extra={"doc_default": "`0` (= CPU cores)"},
                                 description="Worker processes; 0 = number of CPU cores.")
    mini_batch_timeout_s: Float = Field(default=300.0, gt=0, description="Time limit per series, per attempt "
                                        "(seconds).")
    max_retries: Int = Field(default=2, ge=0, description="Retries of a failed or timed-out mini-batch (series).")
    mini_batch_error_threshold: Int = Field(
        default=-1, ge=-1, description="Failed mini-batches tolerated in one run (job) before it fails; -1 = never "
        "fail. A global model's batch counts its failed series one by one (its one mini-batch does not fail as a "
        "whole), as do mini-batches of one series."
    )
    series_per_task: Int = Field(
        default=250, ge=1, description="Series handed to a worker at once (dispatch cost is paid per task)."
    )
    series_per_minibatch: Int = Field(
        default=250, ge=1,
        description="Local runner: series per mini-batch for the training, promotion and scoring entry scripts "
        "(training and scoring handle a mini-batch's linear models in one vectorised pass); a mini-batch that "
        "fails is rerun one series per mini-batch so failures stay per series. 1 = one series per mini-batch "
        "(Azure ML's textbook partition_keys semantics). The azureml runner uses it as the smallest chunk "
        "(azureml.max_mini_batches).",
    )


class AzureMLSettings(_Section):
    """The ``azureml`` runner (``runner.kind: azureml``): each batch of store partitions runs as an Azure ML SDK v2
    pipeline job with one parallel node. The per-series settings (concurrency per node, timeout, retries, error
    threshold) are the ``runner`` ones. Credentials come from ``DefaultAzureCredential``: nothing here is secret."""

    subscription_id: str = Field(default="", description="Azure subscription of the Azure ML workspace.")
    resource_group: str = Field(default="", description="Resource group of the Azure ML workspace.")
    workspace: str = Field(default="", description="Azure ML workspace name.")
    compute: str = Field(default="mm-cpu-cluster", description="AmlCompute cluster (deploy/azureml/compute.yml).")
    environment: str = Field(
        default="azureml:mm-assets-job@latest",
        description="Job environment (deploy/azureml/job-environment.yml); it needs no Dagster.",
    )
    instance_count: Int = Field(default=2, ge=1, description="Nodes per parallel job; worker processes per node: "
                                "runner.max_concurrency (0: one per vCPU).")
    max_mini_batches: Int = Field(
        default=200, ge=1,
        description="Training, promotion and scoring jobs hand Azure ML chunks of series (a stable hash bucket of "
        "the series key), at least runner.series_per_minibatch series each and about this many chunks at most: "
        "each mini-batch has its own scheduling and reading overhead. A chunk that fails is rerun series by "
        "series, so a failure is still recorded for exactly the failing series.",
    )
    identity: Literal["managed", "user", "aml_token"] = Field(
        default="managed",
        description="Identity the job reads the lake with: the cluster's managed identity, the submitting user, "
        "or the workspace's AML token.",
    )
    experiment_name: str = Field(default="mm-assets", description="Azure ML experiment the jobs are filed under.")
    staging_folder: str = Field(
        default="azureml", description="Lake folder where each batch is staged as an MLTable input."
    )

    cleanup_staging: bool = Field(default=True, description="Delete a batch's staged input once its job completed.")
    poll_interval_s: Float = Field(default=5.0, gt=0, description="First wait between two status polls.")
    max_poll_interval_s: Float = Field(default=60.0, gt=0, description="Longest wait between polls (backoff).")
    progress_messages: bool = Field(
        default=True,
        description="Per-batch progress and per-series failures sent by the job as dagster-pipes messages "
        "through the lake's Blob storage.",
    )
    register_models: bool = Field(
        default=True, description="After a training job, register one Azure ML model per batch (its bundles)."
    )
    model_name: str = Field(default="mm-assets-models", description="Azure ML model name of those registrations.")
    environment_variables: dict[str, str] = Field(
        default_factory=dict,
        description="Extra job environment variables (e.g. AZURE_CLIENT_ID of a user-assigned identity); never "
        "secrets.",
    )

    @model_validator(mode="after")
    def _poll_bounds(self) -> AzureMLSettings:
        if self.max_poll_interval_s < self.poll_interval_s:
            raise ValueError("azureml.max_poll_interval_s must be >= azureml.poll_interval_s")
        return self

    def workspace_problem(self) -> str | None:
        """What the ``azureml`` runner lacks to reach its workspace, or None: said before a cycle's first write."""
        missing = [f"azureml.{name}" for name in ("subscription_id", "resource_group", "workspace")
                   if not getattr(self, name)]
        if not missing:
            return None
        return (f"runner.kind=azureml needs the Azure ML workspace: set {', '.join(missing)} in mm_assets.yaml or as "
                "MM_ASSETS__AZUREML__<FIELD> (sign-in is DefaultAzureCredential: az login, a managed identity or "
                "AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET in the environment; never in a file)")


class PromotionSettings(_Section):
    """The promotion gate: a challenger becomes champion only if it passes every rule."""

    min_accuracy: Float | None = Field(
        default=None, description="Optional absolute floor: 1 - WAPE on the holdout >= this, a share between 0 "
        "and 1 (e.g. 0.80 for 80 %). Off by default: a challenger that beats the series' baseline on the same "
        "holdout is promoted.")
    max_mase: Float | None = Field(
        default=None, gt=0, description="Optional floor: MASE (against in-sample seasonal naive) < this.")
    prior_points: Float = Field(
        default=8.0, ge=0,
        description="How much the other series count when a series' holdout is judged against its "
        "baseline, in holdout points: a series with n points is judged on (n x its own log MAE ratio + this x "
        "the mean log ratio of the latest models of its model type in every store, without their highest and "
        "lowest tenth so that one junk series cannot move it) / (n + this). Every store: a run of one store is "
        "judged as one of all stores. A 2-point holdout alone is a coin toss; 0 judges every series on its own "
        "holdout only.")
    holdout_periods: Int = Field(
        default=8, ge=0, le=1000,
        description="The holdout the gate judges covers at least this many periods, in windows of horizon periods "
        "each forecast from its own origin (gap before it) by one model fitted before the first: ceil(this / "
        "horizon) windows, fewer for a series whose history leaves less than model.min_train_periods before them "
        "or would spend more than half on them. "
        "One window of a short horizon is one draw of the chain's luck (a weekly horizon of 2: two weeks); the "
        "holdout metrics in the registry and the warehouse are those of all its windows. Up to the horizon: one "
        "window, the newest horizon periods. Each window is one more forecast of every series in training, not "
        "another fit.")
    champion_tolerance: Float = Field(
        default=0.0,
        ge=0,
        description="Not worse than the champion re-scored on the challenger's holdout: challenger WAPE <= "
        "champion WAPE + this.",
    )
    retire_margin: Float = Field(
        default=0.05, ge=0.0,
        description="A champion whose own model type and options, fitted on today's data (the challenger), do not "
        "beat the baseline is retired (its baseline serves the series until a challenger passes) only when that "
        "challenger's error is more than this share above the baseline's (MAE ratio > 1 + this); within it the "
        "champion stays. Without a margin a series whose model and baseline are about even switches between them "
        "from day to day.")
    report_min_promoted_share: Float = Field(
        default=0.5, ge=0, le=1, description="`mm-assets promotion-report` fails below this share of series "
        "with a gate-passing model (the DevOps gate; the counterpart of operations.max_baseline_share). Registries "
        "without any series pass: nothing to judge yet (a first deployment).",
    )

    @field_validator("min_accuracy")
    @classmethod
    def _accuracy_is_a_share(cls, value: float | None) -> float | None:
        """1 - WAPE is at most 1: a floor written as a percentage (80) would reject every challenger."""
        if value is None or 0 <= value <= 1:
            return value
        hint = f"for {value:g} % write {value / 100:.2f}" if 1 < value <= 100 else "e.g. 0.80 for 80 %"
        raise ValueError(f"{value:g} is not a share between 0 and 1 (1 - WAPE on the holdout): {hint}")


class IngestSettings(_Section):
    start_date: str | None = Field(
        default="2023-11-24",
        description="First daily partition of raw_sales (ISO date). Set it to your source's first date.",
    )
    on_duplicates: Literal["error", "sum", "last"] = Field(
        default="error", description="Rows sharing (timestamp, ids): error, sum (targets summed) or last. The rows "
        "sum or last merged are counted in the ingest's log and its duplicate_rows_merged metadata.")
    on_bad_rows: Literal["hold", "error"] = Field(
        default="hold",
        description="A row whose values fail validation (a missing, negative or non-numeric target, a regressor "
        "that is not a number, a duplicate key, an empty or unusable id): hold (its series' rows of the periods read "
        "are held back, its stored rows stay as they were, the other series are ingested; a bad planned row holds "
        "back only the series' plan; the "
        "check no_series_held_back and the cycle summary name it until its periods are ingested again with good rows: "
        "mm-assets cycle reads every period, the ingest schedule only the newest) or error (the "
        "whole ingest is refused).",
    )
    on_rewritten_ids: Literal["refuse", "accept"] = Field(
        default="refuse",
        description="A series the source now writes another way than the newest stored period has it (2 as "
        "'002', 1 as '1.0', 'Store A' as 'STORE A'), with no row of the stored form since the new one's first, or "
        "than a period read again held it (a store renamed in its whole history after its sales stopped): "
        "refuse (the ingest fails naming both; each would start a new series without its history or models) or "
        "accept (they are new series).",
    )
    max_held_share: Float = Field(
        default=0.2, ge=0.0, le=1.0,
        description="With on_bad_rows: hold, the ingest is refused instead when more than this share of the series "
        "read would be held back: so many bad rows are a mapping or export problem, not a slip in a few series.",
    )
    periods_per_read: Int = Field(
        default=92, ge=1,
        description="Most periods of raw_sales read from the source per query in a backfill: memory is bounded "
        "by a slice's rows, not by the backfill's length.",
    )
    rows_per_read: Int = Field(
        default=1_000_000, ge=1,
        description="Rows a backfill's query aims at (about 0.7 GB in memory): after a first read of a few "
        "periods, each slice takes as many periods as fit, at most periods_per_read (100,000 series of weekly "
        "data: 10 weeks a query, not 92).",
    )
    max_normal_gap: Int | None = Field(
        default=None, ge=1, json_schema_extra={"doc_default": "3 daily, 2 weekly"},
        description="Longest run of missing periods inside a series that is normal (closed days, a missing "
        "week); a longer one within the newest year of its store's data warns in the check gaps_within_series. "
        "Default 3 periods daily, 2 weekly.",
    )
    dormant_after: Int | None = Field(
        default=None, ge=1, json_schema_extra={"doc_default": "a quarter: 91 daily, 13 weekly"},
        description="Under absent_periods: missing, a series without a row in this many periods before its store's "
        "newest is dormant (a discontinued item): it is left out of training, scoring and publishing, which "
        "would forecast it from its own last row for periods now past, and named in the check "
        "series_reach_data_end and the cycle summary; its rows stay in the lake and its first new row brings it "
        "back with its whole history. A very large number keeps every series. Under zero every series runs up "
        "to the newest period (no series is dormant).",
    )
    absent_periods: Literal["missing", "zero"] = Field(
        default="missing",
        description="What a period without a row means, inside a series' span and after its last row up to the "
        "partition's newest period: missing (not known: lags carry the last value forward, and a series whose rows "
        "stop early is forecast from its own last row, which the check series_reach_data_end warns of, until it is "
        "dormant: dormant_after) or zero (no "
        "sales: sources that store only the periods with sales get every series filled with a zero target up to "
        "the newest period, flag-like 0/1 regressors 0 and the others carried forward, so every forecast starts "
        "from the same period). Under missing, a weekday a daily series has had no row on for 8 weeks (a store "
        "closed on Sundays) is forecast 0 in batch scoring.",
    )

    @field_validator("start_date", mode="before")
    @classmethod
    def _iso_date(cls, value: Any) -> Any:
        if isinstance(value, (dt.date, dt.datetime)):
            return value.isoformat()[:10]
        if isinstance(value, str):
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{value!r} is not an ISO date (YYYY-MM-DD)") from None
        return value


class OperationsSettings(_Section):
    alert_webhook: str | None = Field(
        default=None,
        description="URL that receives a JSON POST when a run fails (e.g. a Teams/Slack incoming webhook); the "
        "URL is never logged, only its host; none: failures are only logged.",
    )
    max_baseline_share: Float = Field(
        default=0.5, ge=0.0, le=1.0,
        description="A store whose share of series served by the baseline (no champion) is above this fails the "
        "production_models check served_by_model.",
    )
    accuracy_window: Int = Field(
        default=28, ge=1,
        description="Periods of realised accuracy (newest forecast periods with actuals) that forecast_accuracy "
        "judges and shows per store.",
    )
    accuracy_rejudge_periods: Int = Field(
        default=1, ge=0,
        description="forecast_accuracy judges each forecast point when its actual arrives, and judges again the "
        "points of this many of the newest periods already judged (late actuals are picked up); a period the ingest "
        "found rewritten in the source (a correction) is judged again whatever its age within the window.",
    )
    owners: list[str] = Field(
        default=["team:demand-forecasting"],
        description="Owners of every asset, shown in the Dagster UI (catalog filter, asset header): e-mail "
        "addresses or team:<name>.",
    )

    @field_validator("owners")
    @classmethod
    def _owners_are_people_or_teams(cls, owners: list[str]) -> list[str]:
        for owner in owners:
            if not (owner.startswith("team:") and len(owner) > 5) and not _EMAIL.fullmatch(owner):
                raise ValueError(f"owner {owner!r} is neither an e-mail address nor team:<name> (e.g. team:planning)")
        return owners


class ScheduleSettings(_Section):
    cron: str = Field(default="0 3 * * *", description="When the ingest schedule ticks (once a day by default, for weekly data too: each period is ingested once): a cron expression of five "
                      "fields (minute hour day-of-month month day-of-week) or @daily, @hourly, ...")
    timezone: str = Field(default="UTC", description="Timezone of the cron and of the period partitions (an IANA "
                          "name, e.g. Europe/Amsterdam).")
    partitions_per_run: Int = Field(
        default=100, ge=1, description="Store partitions per training/scoring run at most (stores, or hash buckets "
        "of them). A global model (lightgbm) learns from the series of its run (and other stores' in a run smaller "
        "than model.global_context_rows), so more is better for accuracy as long as the run's rows fit in memory "
        "(rows_per_run). A backfill launched from the Dagster UI runs this "
        "many partitions a run, whatever their rows; its training then fits one global model per group of them "
        "that fits rows_per_run.")
    rows_per_run: Int = Field(
        default=15_000_000, ge=1, description="Rows per training/scoring run at most, for the runs mm-assets cycle "
        "and the sensors request: partitions are added to a run while their rows fit. A partition's rows are those a "
        "global model's training reads (each series' newest model.params.max_train_periods, two years by default, and "
        "what their features look back on: 1,152 days of a daily series, 163 weeks of a weekly one), as its dataset "
        "recorded when it was cut; before its first cut, all its raw rows. A run given more (a backfill from the "
        "Dagster UI) trains one global model per such group. One partition larger than this makes a run alone. A run's "
        "peak memory with lightgbm is about 3.1 GB at 11.5M such rows (10,000 daily series of 4,000 days, 36.5M "
        "dataset rows, in one run) and 3.5 GB at 13.4M (weekly series of three years): lower it on a smaller "
        "machine; each run costs one more fit.")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        """Refused here, not when Dagster builds the schedule: a bad cron would stop the code location and every
        run after `mm-assets settings` said the settings were valid."""
        problem = cron_problem(value)
        if problem:
            raise ValueError(f"{value!r} is not a cron schedule: {problem}; e.g. '0 3 * * *' (03:00 every day), "
                             "'30 6 * * 1-5' (06:30 Monday to Friday) or @daily")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        """The schedule and the period partitions are built in this zone: an unknown one fails every run."""
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            close = difflib.get_close_matches(value, sorted(zoneinfo.available_timezones()), n=3, cutoff=0.6)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise ValueError(f"{value!r} is not an IANA time zone; {hint}use e.g. UTC, Europe/Amsterdam or "
                             "America/New_York") from None
        return value


class Settings(_Section):
    """All settings. Defaults reproduce the embedded demo."""

    source: SourceSettings = SourceSettings()
    columns: ColumnSettings = ColumnSettings()
    partition: PartitionSettings = PartitionSettings()
    frequency: str = Field(default="D", description="Pandas frequency of the series: D (daily) or W / W-SUN... (weekly; "
                           "a week is dated by its first day, the weekday named: W-MON weeks run Monday to Sunday).")
    horizon: Int = Field(default=28, ge=1, le=1000, description="Periods forecast (and held out for the "
                         "holdout metrics).")
    gap: Int = Field(
        default=0,
        description="Lead time: periods between the last observation (the origin) and the first forecast period. "
        "Forecasts cover origin+gap+1 .. origin+gap+horizon; the holdout is held out the same way.",
    )
    season_length: Int | None = Field(
        default=None, ge=1, json_schema_extra={"doc_default": "7 daily, 52 weekly"},
        description="Season of seasonal naive (a baseline candidate), MASE and the seasonal lag of linear and "
        "lightgbm (for daily data with the weekly season, a year back: the day of week is a feature).")
    model: ModelSettings = ModelSettings()
    promotion: PromotionSettings = PromotionSettings()
    storage: StorageSettings = StorageSettings()
    runner: RunnerSettings = RunnerSettings()
    azureml: AzureMLSettings = AzureMLSettings()
    ingest: IngestSettings = IngestSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    operations: OperationsSettings = OperationsSettings()

    @field_validator("gap")
    @classmethod
    def _gap(cls, value: int) -> int:
        if value < 0 or value > 1000:
            raise ValueError(
                f"gap {value} is out of range: use 0 (forecasts start right after the last observation) up to "
                "1000 periods of lead time (e.g. gap: 2 for orders placed two periods ahead)"
            )
        return value

    @field_validator("frequency")
    @classmethod
    def _frequency(cls, value: str) -> str:
        upper = value.upper()
        if upper == "D" or upper == "W" or (upper.startswith("W-") and upper[2:] in WEEKDAYS):
            return upper
        raise ValueError(
            f"frequency {value!r} is not supported; use D (daily), or W (= W-SUN: weeks dated by their Sunday) or W-<day> for "
            f"weeks dated by another weekday, with <day> one of {', '.join(WEEKDAYS)} (e.g. W-MON)"
        )

    @model_validator(mode="after")
    def _partition_column_is_an_id(self) -> Settings:
        if self.partition.column not in self.columns.ids:
            raise ValueError(
                f"partition.column {self.partition.column!r} must be one of columns.ids {self.columns.ids}"
            )
        return self

    @model_validator(mode="after")
    def _retention_keeps_what_accuracy_reads(self) -> Settings:
        days = self.storage.forecast_retention_days
        if days is None:
            return self
        periods = 2 * self.horizon + self.operations.accuracy_window
        need = periods * self.step.days
        if days < need:
            raise ValueError(
                f"storage.forecast_retention_days {days} is shorter than what forecast_accuracy reads back: the "
                f"origins of the newest 2 x horizon ({self.horizon}) + operations.accuracy_window "
                f"({self.operations.accuracy_window}) = {periods} periods, {need} days; set it to at least {need}, "
                "or lower operations.accuracy_window"
            )
        return self

    @property
    def is_daily(self) -> bool:
        return self.frequency == "D"

    @property
    def step(self) -> pd.Timedelta:
        """The length of one period."""
        return DAY if self.is_daily else WEEK

    @property
    def pandas_freq(self) -> str:
        return "W-SUN" if self.frequency == "W" else self.frequency

    @property
    def week_anchor(self) -> str:
        """The weekday weekly periods are dated by (``WEEKDAYS``); Sunday for daily data and plain ``W``."""
        return self.pandas_freq[2:] if self.pandas_freq.startswith("W-") else "SUN"

    @property
    def season(self) -> int:
        return self.season_length or (7 if self.is_daily else 52)

    @property
    def max_normal_gap(self) -> int:
        return self.ingest.max_normal_gap or (3 if self.is_daily else 2)

    @property
    def dormant_after(self) -> int:
        """Periods without a row after which a series is dormant (``ingest.dormant_after``; a quarter)."""
        return self.ingest.dormant_after or (91 if self.is_daily else 13)

    @property
    def min_train_periods(self) -> int:
        return self.min_train_periods_for(self.model.type)

    def min_train_periods_for(self, model_type: str) -> int:
        """``model.min_train_periods`` when set, else the default of ``model_type`` (a backtest of another model
        type than the configured one judges it with the history it would get in training)."""
        return self.model.min_train_periods or self.default_min_train_periods(model_type)

    def default_min_train_periods(self, model_type: str) -> int:
        """The history ``model_type`` needs when ``model.min_train_periods`` does not say."""
        if model_type in GLOBAL_TYPES:  # one model learnt across series: a new item needs only a few periods
            return 7 if self.is_daily else 4
        return self.horizon + self.gap + 30


class _SettingsLoader(yaml.SafeLoader):
    """YAML's safe loader, but a date that is no calendar day (``2026-02-30``) stays the text written, so that the
    setting's own validation names the field, instead of PyYAML's bare "day is out of range for month"."""


def _timestamp_or_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError:
        return loader.construct_scalar(node)


_SettingsLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_or_text)


def _mapping_with_each_key_once(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    """A mapping whose keys are each written once: YAML readers keep the last of two silently, so the value
    the operator reads first in the file would not be the one in force."""
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                f"while reading the mapping at line {node.start_mark.line + 1}", node.start_mark,
                f"the key {key!r} is written twice (lines {seen[key].start_mark.line + 1} and "
                f"{key_node.start_mark.line + 1}): keep one", key_node.start_mark)
        seen[key] = key_node
    return loader.construct_mapping(node)


_SettingsLoader.add_constructor("tag:yaml.org,2002:map", _mapping_with_each_key_once)


def _read_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_SettingsLoader)  # a SafeLoader: no Python objects


def _parse_env_value(raw: str) -> Any:
    try:
        return _read_yaml(raw)
    except yaml.YAMLError:
        return raw


def _env_paths(environ: dict[str, str]) -> dict[tuple[str, ...], str]:
    """The settings path each ``MM_ASSETS__*`` variable sets → the variable's name (an error names it)."""
    paths = {}
    for key in environ:
        if key.startswith(ENV_PREFIX):
            path = tuple(p.lower() for p in key[len(ENV_PREFIX) :].split("__") if p)
            if path:
                paths[path] = key
    return paths


def _one_underscore(environ: dict[str, str]) -> str | None:
    """What to say of a variable that looks meant to set a setting but has one underscore after ``MM_ASSETS``
    (``MM_ASSETS_HORIZON``): it would be ignored without a word, and the run would use another horizon."""
    single = ENV_PREFIX[:-1]
    for key in sorted(environ):
        if key.startswith(single) and not key.startswith(ENV_PREFIX):
            first = key[len(single):].split("__")[0].lower()
            if first in Settings.model_fields:
                meant = ENV_PREFIX + key[len(single):]
                return (f"the environment variable {key} is not read: a setting is set by {ENV_PREFIX}<SECTION>__"
                        f"<FIELD>, with two underscores after MM_ASSETS; rename it {meant}")
    return None


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, key in _env_paths(environ).items():
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _parse_env_value(environ[key])
    return tree


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def settings_path(environ: dict[str, str] | None = None) -> Path | None:
    """The settings file in force: ``$MM_ASSETS_SETTINGS``, else ./mm_assets.yaml if present, else none."""
    environ = dict(os.environ) if environ is None else environ
    explicit = environ.get(SETTINGS_ENV)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise SettingsError(f"{SETTINGS_ENV}={explicit!r}: no such settings file; fix the path or unset it")
        return path
    default = Path(DEFAULT_SETTINGS_FILE)
    return default if default.is_file() else None


def _section_of(loc: tuple) -> tuple[str, type[BaseModel] | None]:
    """The section (dotted name, settings class) that holds the key at ``loc``; no class when ``loc`` is inside
    a free mapping such as model.params."""
    model: type[BaseModel] | None = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if model else None
        annotation = field.annotation if field else None
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return ".".join(str(p) for p in loc[:-1]), model


def _unknown_key(loc: tuple) -> str:
    """Why an unknown key was refused and what was meant: pydantic only says "Extra inputs are not permitted",
    while a typo (horizn, model.typ) needs the section's keys and the closest ones."""
    section, model = _section_of(loc)
    key = str(loc[-1])
    where = f"in section {section}" if section else "at the top level"
    if model is None:
        return f"unknown setting {key!r} {where}"
    valid = list(model.model_fields)
    close = difflib.get_close_matches(key.lower(), valid, n=3, cutoff=0.6)
    meant = f"; did you mean {' or '.join(close)}?" if close else ""
    return f"unknown setting {key!r} {where}{meant} (valid keys {where}: {', '.join(valid)})"


def _format_validation_error(err: ValidationError, origin: str, env: dict[tuple[str, ...], str] | None = None) -> str:
    """Each error as a line naming its field (and, when an ``MM_ASSETS__*`` variable set it, that variable:
    a typo there is not in the settings file the operator would search)."""
    lines = [f"invalid settings in {origin}:"]
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "(top level)"
        message = _unknown_key(e["loc"]) if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, ")
        loc = tuple(str(p) for p in e["loc"])
        variable = next((name for path, name in (env or {}).items() if loc[: len(path)] == path), None)
        if variable:
            message += f" (set by the environment variable {variable})"
        if message.startswith((f"{field}.", f"{field}: ")):  # lines that name their field (model.params.<key>)
            lines.extend(f"  - {line}" for line in message.splitlines())
        else:
            lines.append(f"  - {field}: {message}")
    lines.append("See docs/configuration.md for every setting and its default.")
    return "\n".join(lines)


def load_settings(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Load and validate settings; errors name the field and the fix."""
    environ = dict(os.environ) if environ is None else environ
    file = Path(path) if path is not None else settings_path(environ)
    data: dict[str, Any] = {}
    origin = "defaults"
    if file is not None:
        origin = str(file)
        try:
            loaded = _read_yaml(file.read_text())
        except yaml.YAMLError as exc:
            raise SettingsError(f"{file}: not valid YAML ({exc})") from exc
        if loaded is None:  # a truncated or not yet written file would otherwise run on the demo's defaults
            raise SettingsError(
                f"{file}: the settings file is empty (no setting, only comments or blank lines). Write the sections "
                "your data needs (source:, columns:, storage:, ...; `mm-assets settings` prints every setting in "
                f"force), or to run on the embedded defaults on purpose, unset {SETTINGS_ENV} (and remove "
                f"./{DEFAULT_SETTINGS_FILE} if it is the empty one)")
        if not isinstance(loaded, dict):
            raise SettingsError(f"{file}: expected a mapping of sections (source:, columns:, ...)")
        data = loaded
    misspelt = _one_underscore(environ)
    if misspelt:
        raise SettingsError(misspelt)
    overrides = _env_overrides(environ)
    if overrides:
        origin += " + MM_ASSETS__* environment"
        data = _deep_merge(data, overrides)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise SettingsError(_format_validation_error(exc, origin, _env_paths(environ))) from None
