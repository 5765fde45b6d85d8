"""One batch of store partitions as an Azure ML SDK v2 pipeline job with one parallel node.

The node (``azure.ai.ml.parallel.parallel_run_function``) maps the runner settings one to one:

    partition_keys               = [mm_chunk] (chunks of series, for the entry scripts that take many) or the id
                                   columns (one mini-batch per series); input: the staged MLTable, direct mode
    max_concurrency_per_instance = runner.max_concurrency (0: left to Azure ML = cores of a CPU node)
    instance_count               = azureml.instance_count (1 for a global model's one mini-batch)
    retry_settings               = {max_retries: runner.max_retries, timeout: runner.mini_batch_timeout_s per
                                   series of the largest mini-batch}
    mini_batch_error_threshold   = runner.mini_batch_error_threshold
    error_threshold              = -1 (counts rows returned vs rows in; a series returns 1 or horizon rows by design)
    is_deterministic             = False (and settings.force_rerun): daily retraining is never skipped by reuse
    task.append_row_to           = ${{outputs.results}} (the rows, see ``codec``)
    task.entry_script            = mm_assets_entry.py, the ``shim`` around the real entry script

The entry script's arguments travel inside ``--mm-assets-args`` (see ``shim``). ``stage_code`` writes the code
folder: the ``mm_assets`` package (no tests, no data) and the one-line entry file.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from mm_assets.parallel.azureml.mltable import CHUNK_KEY
from mm_assets.parallel.azureml.shim import ARGS_FLAG, encode_arguments
from mm_assets.parallel.contract import WHOLE_BATCH_KEY
from mm_assets.settings import AzureMLSettings, Settings

ENTRY_FILE = "mm_assets_entry.py"
INPUT_NAME = "series"
OUTPUT_NAME = "results"
_ENTRY_SOURCE = '''"""mm-assets Azure ML parallel-job entry script (generated): the shim around the real entry script."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mm_assets.parallel.azureml.shim import init, run, shutdown  # noqa: E402,F401
'''


def task_name(entry_script: str) -> str:
    """``mm_assets.parallel.train_entry`` → ``train``."""
    name = entry_script.rsplit(".", 1)[-1]
    return re.sub(r"[^a-z0-9_]", "_", name.removesuffix("_entry").lower()) or "task"


def stage_code(dest: str | os.PathLike) -> Path:
    """The job's code folder: a copy of the ``mm_assets`` package and the entry file. Returns the folder."""
    import mm_assets

    dest = Path(dest)
    package = Path(mm_assets.__file__).resolve().parent
    if dest.exists():
        if any(dest.iterdir()) and not (dest / ENTRY_FILE).is_file():
            raise FileExistsError(f"{dest} exists and is not a code folder written here; choose another --out")
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copytree(package, dest / "mm_assets", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"))
    (dest / ENTRY_FILE).write_text(_ENTRY_SOURCE)
    return dest


# The settings sections that stay home: a job's definition is visible in Azure ML studio and in a dry-run YAML,
# and these hold database URLs (source, storage: only its lake travels), a webhook (operations), the workspace
# (azureml) or what only the Dagster side reads (ingest, schedule). Every other setting travels: a top-level
# value the entry scripts read (``gap``) once did not, and jobs forecast as if it were 0.
HOME_SETTINGS = ("source", "storage", "azureml", "ingest", "schedule", "operations")
SHAREABLE_SETTINGS = tuple(name for name in Settings.model_fields if name not in HOME_SETTINGS)


def shareable_arguments(arguments: Sequence[str]) -> list[str]:
    """The entry script's arguments with ``--settings-json`` reduced to what the entry scripts read."""
    import json

    args = list(arguments)
    if "--settings-json" in args and args.index("--settings-json") + 1 < len(args):
        i = args.index("--settings-json") + 1
        full = json.loads(args[i])
        kept = {k: full[k] for k in SHAREABLE_SETTINGS if k in full}
        if "lake" in (full.get("storage") or {}):
            kept["storage"] = {"lake": full["storage"]["lake"]}
        args[i] = json.dumps(kept, separators=(",", ":"))
    return args


def job_environment(environment: Mapping[str, str] | None) -> dict[str, str]:
    """The job's environment variables. ``MM_ASSETS__*`` overrides (and ``MM_ASSETS_SETTINGS``) stay home: the
    settings travel as ``--settings-json``; other ``MM_ASSETS_*`` variables (e.g. fault injection) go along."""
    return {str(k): str(v) for k, v in (environment or {}).items()
            if not (str(k).startswith("MM_ASSETS__") or str(k) == "MM_ASSETS_SETTINGS")}


def _identity(kind: str):
    from azure.ai.ml.entities import AmlTokenConfiguration, ManagedIdentityConfiguration, UserIdentityConfiguration

    return {"managed": ManagedIdentityConfiguration, "user": UserIdentityConfiguration,
            "aml_token": AmlTokenConfiguration}[kind]()


def build_pipeline_job(
    *,
    entry_script: str,
    arguments: Sequence[str],
    partition_keys: Sequence[str],
    input_path: str,
    code_dir: str | os.PathLike,
    azureml: AzureMLSettings,
    max_concurrency: int,
    mini_batch_timeout_s: float,
    max_retries: int,
    mini_batch_error_threshold: int,
    environment_variables: Mapping[str, str] | None = None,
    job_name: str | None = None,
    display_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    id_columns: Sequence[str] = (),
):
    """The pipeline job (not submitted). ``input_path``: URL (or local path) of the staged MLTable folder;
    ``id_columns``: the series' id columns when ``partition_keys`` is the chunk column."""
    from azure.ai.ml import Input, Output, dsl
    from azure.ai.ml.constants import AssetTypes, InputOutputModes
    from azure.ai.ml.parallel import RunFunction, parallel_run_function

    # The SDK logs "This is an experimental class" for schema classes it uses internally: noise for our users.
    logging.getLogger("azure.ai.ml._utils._experimental").setLevel(logging.ERROR)

    task = task_name(entry_script)
    token = encode_arguments(entry_script, shareable_arguments(arguments), partition_keys, id_columns, max_retries)
    chunked = list(partition_keys) == [CHUNK_KEY]
    unit = ("chunks of series" if chunked else "one mini-batch of every series (a global model)"
            if list(partition_keys) == [WHOLE_BATCH_KEY] else "one mini-batch per series")
    node_function = parallel_run_function(
        name=f"mm_assets_{task}",
        display_name=f"mm-assets {task}: {unit}",
        description=f"{entry_script} over every series of the batch (partition keys {list(partition_keys)})",
        inputs={INPUT_NAME: Input(type=AssetTypes.MLTABLE, mode=InputOutputModes.DIRECT,
                                  description=f"the batch's series, an MLTable partitioned by {list(partition_keys)}")},
        outputs={OUTPUT_NAME: Output(type=AssetTypes.URI_FOLDER, mode=InputOutputModes.RW_MOUNT)},
        input_data=f"${{{{inputs.{INPUT_NAME}}}}}",
        partition_keys=list(partition_keys),
        # one mini-batch (a global model) runs on one node: the others would be billed idle
        instance_count=1 if list(partition_keys) == [WHOLE_BATCH_KEY] else azureml.instance_count,
        max_concurrency_per_instance=max_concurrency or None,
        error_threshold=-1,
        mini_batch_error_threshold=mini_batch_error_threshold,
        retry_settings={"max_retries": max_retries, "timeout": max(1, math.ceil(mini_batch_timeout_s))},
        logging_level="INFO",
        environment_variables=job_environment(environment_variables),
        identity=_identity(azureml.identity),
        is_deterministic=False,
        task=RunFunction(
            code=str(Path(code_dir).resolve()),
            entry_script=ENTRY_FILE,
            environment=azureml.environment,
            program_arguments=f"{ARGS_FLAG} {token}",
            append_row_to=f"${{{{outputs.{OUTPUT_NAME}}}}}",
        ),
    )

    @dsl.pipeline(name=f"mm_assets_{task}_batch", display_name=display_name or f"mm-assets {task}",
                  compute=azureml.compute)
    def batch_pipeline(series):
        node = node_function(series=series)
        return {OUTPUT_NAME: node.outputs[OUTPUT_NAME]}

    job = batch_pipeline(series=Input(type=AssetTypes.MLTABLE, path=input_path, mode=InputOutputModes.DIRECT))
    job.settings.default_compute = azureml.compute
    job.settings.force_rerun = True
    job.experiment_name = azureml.experiment_name
    if job_name:
        job.name = job_name
    job.tags = {str(k): str(v) for k, v in (tags or {}).items()}
    return job


def parallel_node(job):
    """The (only) parallel node of a pipeline job built here or loaded from its YAML."""
    nodes = [n for n in job.jobs.values() if getattr(n, "type", None) == "parallel"]
    if len(nodes) != 1:
        raise ValueError(f"expected one parallel node, found {len(nodes)}")
    return nodes[0]


def write_job_yaml(job, out: str | os.PathLike, header: str = "") -> Path:
    """Dump the job as YAML that ``az ml job create -f`` and ``azure.ai.ml.load_job`` accept; local paths (the
    code folder, a local input folder) are written relative to the YAML file."""
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    job.dump(out)
    data = yaml.safe_load(out.read_text())

    def relative(value):
        if not isinstance(value, str):
            return value
        # The SDK's dump writes every input path as an asset reference ("azureml:<path>"); its loader strips
        # the prefix again. Write the path itself, so the file says what it means.
        bare = value[len("azureml:") :] if value.startswith("azureml:") else value
        if re.match(r"^(https?|wasbs?|abfss?)://", bare):
            return bare
        if os.path.isabs(bare) and os.path.exists(bare):
            return os.path.relpath(bare, out.parent)
        return value

    for key in ("inputs",):
        for spec in (data.get(key) or {}).values():
            if isinstance(spec, dict) and "path" in spec:
                spec["path"] = relative(spec["path"])
    for node in (data.get("jobs") or {}).values():
        component_task = (node.get("component") or {}).get("task")
        if isinstance(component_task, dict):
            component_task["code"] = relative(component_task.get("code"))
            # The node repeats its inline component's task; the SDK resolves a relative code path of that copy
            # against the current directory (not the YAML's), so `az ml job create -f` from elsewhere would
            # fail. Without the copy the node takes the component's task, whose path is resolved correctly.
            node.pop("task", None)
    text = yaml.safe_dump(data, sort_keys=False, width=4096)
    prefix = "".join(f"# {line}\n".replace("# \n", "#\n") for line in header.splitlines()) if header else ""
    out.write_text(prefix + text)
    return out
