"""``mm-assets azureml build-job``: the pipeline job YAML of one batch, built as the runner builds it, not submitted.

It stages the batch's series in the lake (the MLTable folder the job reads), stages the code folder next to the
YAML (``<out stem>-code/``) and writes the YAML (``az ml job create -f <out>`` submits it). With a local lake the
YAML still loads and validates, and ``az ml job create`` would upload the staged folder, but the entry scripts'
``--lake-uri`` would name a folder the cluster does not have: the file says so in its header.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

from mm_assets.forecasting.models import is_global
from mm_assets.ingest.datasets import dataset_file
from mm_assets.ingest.partition_rows import context_partitions
from mm_assets.lake import Lake
from mm_assets.parallel.azureml.job import build_pipeline_job, stage_code, write_job_yaml
from mm_assets.parallel.azureml.mltable import CHUNK_KEY, StagedInput, stage_mltable
from mm_assets.parallel.azureml.storage import AzureMLConfigError, azure_lake
from mm_assets.parallel.contract import (
    CONTEXT_COLUMN,
    MANIFEST_COLUMNS,
    SCORE_ENTRY,
    TRAIN_ENTRY,
    WHOLE_BATCH_KEY,
    group_column,
    stage_whole_batch,
    training_window,
)
from mm_assets.settings import Settings

TASKS = {"train": TRAIN_ENTRY, "score": SCORE_ENTRY}


class BuildJobError(ValueError):
    pass


@dataclass
class BuiltJob:
    path: Path
    job: object
    staged: StagedInput
    run_id: str
    series: int = 0
    notes: list[str] = field(default_factory=list)


def build_job_yaml(settings: Settings, partitions: list[str], task: str, out: str | Path,
                   run_id: str | None = None) -> BuiltJob:
    if task not in TASKS:
        raise BuildJobError(f"--task {task!r}: use one of {sorted(TASKS)}")
    partitions = [p.strip() for p in partitions if p.strip()]
    if not partitions:
        raise BuildJobError("--stores: name at least one store partition (e.g. --stores S01,S02)")
    lake = Lake(settings.storage.lake)
    missing = [p for p in partitions if not lake.exists(dataset_file(p))]
    if missing:
        have = sorted(n.removesuffix(".parquet") for n in lake.list("datasets", suffix=".parquet"))
        raise BuildJobError(
            f"no dataset in the lake {settings.storage.lake!r} for partitions {missing}; partitions with a dataset: "
            f"{have[:20] or 'none (materialize series_datasets first, e.g. make demo)'}"
        )
    run_id = run_id or f"dryrun-{uuid.uuid4().hex[:8]}"
    notes: list[str] = []
    extra = ["--model-dir", f"models/{run_id}"] if task == "train" else ["--manifest", _score_manifest(settings, lake,
                                                                                                    partitions, run_id)]
    arguments = ["--settings-json", settings.model_dump_json(), "--lake-uri", lake.uri, "--run-id", run_id, *extra]
    keys = list(settings.columns.ids)
    r = settings.runner
    folder = f"{settings.azureml.staging_folder}/{run_id}-{task}"
    context_rows = 0  # rows of other stores' series a global model learns from (model.global_context_rows)
    files = [dataset_file(p) for p in partitions]
    if task == "train" and is_global(settings.model.type):  # one model learns across series: one mini-batch
        # as the training asset: a small batch learns from other stores' datasets too (model.global_context_rows)
        stores = sorted(n.removesuffix(".parquet") for n in lake.list("datasets", suffix=".parquet"))
        learn_from = context_partitions(lake, partitions, stores, min(settings.model.global_context_rows,
                                                                      settings.schedule.rows_per_run))
        if learn_from:
            notes.append(f"The global model also learns from the series of {len(learn_from)} other store "
                         "partition(s) (model.global_context_rows); models are trained for the batch's series only.")
        series = stage_whole_batch(lake, files, keys, f"{folder}/whole.parquet", training_window(settings),
                                   [dataset_file(p) for p in learn_from])
        staged = stage_mltable(lake, [f"{folder}/whole.parquet"], [WHOLE_BATCH_KEY], f"{folder}/input")
        largest, id_columns, unit = max(1, series), (), f"one mini-batch of all {series} series (a global model)"
        n_series = series
        if learn_from:  # the staged rows include the other stores' ones: said apart, not as the batch's own
            marked = lake.read_table(f"{folder}/whole.parquet", columns=[CONTEXT_COLUMN]).column(0)
            context_rows = int(marked.to_numpy(zero_copy_only=False).sum())
    else:
        group = group_column(settings)
        staged = stage_mltable(lake, files, keys, f"{folder}/input", series_per_chunk=r.series_per_minibatch,
                               max_mini_batches=settings.azureml.max_mini_batches, group_column=group)
        largest = staged.largest_mini_batch
        id_columns, n_series = keys, staged.total
        unit = (f"{staged.mini_batches} mini-batches: chunks of up to {largest} series (partition_keys = "
                f"[{CHUNK_KEY}], a stable hash bucket of " + (f"{group}: a global model forecasts a {group}'s series "
                "together" if group else "the series key") + ")")
    try:
        input_path = azure_lake(settings.storage.lake).https_url(staged.folder)
    except AzureMLConfigError:
        input_path = lake.path(staged.folder)
        notes.append(
            f"storage.lake is {settings.storage.lake!r}, not ADLS Gen2: this file is for inspection. `az ml job "
            "create` would upload the staged input, but the entry scripts would not reach the lake (models, "
            "manifests). Set storage.lake to abfs://<container>@<account>.dfs.core.windows.net/<path> to run it."
        )
    out = Path(out).resolve()
    code_dir = stage_code(out.parent / f"{out.stem}-code")
    job = build_pipeline_job(
        entry_script=TASKS[task],
        arguments=arguments,
        partition_keys=list(staged.partition_keys),
        id_columns=id_columns,
        input_path=input_path,
        code_dir=code_dir,
        azureml=settings.azureml,
        max_concurrency=r.max_concurrency,
        mini_batch_timeout_s=r.mini_batch_timeout_s * largest,
        max_retries=r.max_retries,
        mini_batch_error_threshold=r.mini_batch_error_threshold,
        environment_variables=settings.azureml.environment_variables,
        display_name=f"mm-assets {task}: {len(partitions)} partitions, {n_series} series (dry run {run_id})",
        tags={"mm_assets.run_id": run_id, "mm_assets.task": task, "mm_assets.series": str(n_series),
              "mm_assets.partitions": ",".join(partitions)[:250]},
    )
    validation = job._validate()
    if not validation.passed:
        raise BuildJobError(f"the built job does not pass azure-ai-ml validation: {validation.error_messages}")
    header = "\n".join([
        f"mm-assets {task} batch: partitions {', '.join(partitions)} ({n_series} series, "
        + (f"{staged.rows - context_rows} rows, and {context_rows} rows of other stores' series learnt from)."
           if context_rows else f"{staged.rows} rows)."),
        "Written by `mm-assets azureml build-job` (not submitted). Submit it with:",
        f"  az ml job create -f {out.name} -g <resource group> -w <workspace>",
        f"The parallel node runs {unit},",
        "with the entry script in --mm-assets-args (base64 JSON: entry module, arguments, partition keys, id",
        "columns, retries).",
        *notes,
    ])
    write_job_yaml(job, out, header=header)
    return BuiltJob(path=out, job=job, staged=staged, run_id=run_id, notes=notes, series=n_series)


def _score_manifest(settings: Settings, lake: Lake, partitions: list[str], run_id: str) -> str:
    """The scoring manifest, written as the batch_predictions asset writes it (champions of the partitions)."""
    import pandas as pd

    from mm_assets.registry.production import ProductionRegistry

    current = ProductionRegistry(settings.storage.production_registry, lake, writable=False).current(partitions)
    manifest = current[MANIFEST_COLUMNS] if len(current) else pd.DataFrame(columns=MANIFEST_COLUMNS)
    path = f"manifests/{run_id}.parquet"
    lake.write_parquet(manifest.astype({"version": "int64"}), path)
    return path
