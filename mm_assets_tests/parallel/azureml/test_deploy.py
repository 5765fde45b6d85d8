"""deploy/azureml: the cluster and the job environment load with the SDK, and the job needs none of Dagster."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import yaml
from azure.ai.ml import load_compute, load_environment

from mm_assets.settings import AzureMLSettings

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy" / "azureml"
logging.getLogger("azure.ai.ml._utils._experimental").setLevel(logging.ERROR)


def _pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s#;]+)", line)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(3)
    return pins


def _conda_pip() -> list[str]:
    conda = yaml.safe_load((DEPLOY / "job-conda.yaml").read_text())
    return next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))


def test_compute_cluster_is_the_default_compute():
    compute = load_compute(DEPLOY / "compute.yml")
    defaults = AzureMLSettings()
    assert compute.name == defaults.compute and compute.type == "amlcompute"
    assert compute.min_instances == 0 and compute.max_instances >= defaults.instance_count
    assert compute.identity.type == "system_assigned"


def test_job_environment_is_the_default_environment_and_has_no_dagster():
    env = load_environment(DEPLOY / "job-environment.yml")
    assert AzureMLSettings().environment == f"azureml:{env.name}@latest"
    assert env.image and env.conda_file["dependencies"][0] == "python=3.11"
    names = set(_pins(_conda_pip()))
    assert "dagster-pipes" in names and not {n for n in names if n.startswith("dagster") and n != "dagster-pipes"}
    assert {"mltable", "azureml-dataprep"} <= names  # the parallel runtime's MLTable reader


def test_job_environment_pins_are_the_project_pins():
    constraints = _pins((ROOT / "constraints.txt").read_text().splitlines())
    for name, version in _pins(_conda_pip()).items():
        if name in ("mltable", "azureml-dataprep"):
            continue  # not project dependencies
        assert constraints.get(name) == version, f"{name}=={version} but constraints.txt has {constraints.get(name)}"


JOB_MODULES = ["mm_assets.parallel.azureml.shim", "mm_assets.parallel.azureml.codec",
               "mm_assets.parallel.azureml.progress", "mm_assets.parallel.train_entry",
               "mm_assets.parallel.score_entry", "mm_assets.parallel.promote_entry"]
PROBE = """
import importlib, json, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("dagster", "dagster_azure", "azure"):
            raise ImportError("not in the job image: " + name)
sys.meta_path.insert(0, Block())
before = set(sys.modules)
for module in %s:
    importlib.import_module(module)
importlib.import_module("dagster_pipes")
from mm_assets.parallel.azureml.progress import encode_params, decode_params
assert decode_params(encode_params({"a": 1})) == {"a": 1}
print(json.dumps(sorted({n.split(".")[0] for n in set(sys.modules) - before})))
"""


def test_the_job_side_imports_without_dagster_and_within_the_environment():
    proc = subprocess.run([sys.executable, "-c", PROBE % JOB_MODULES], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    imported = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    direct = {"numpy": "numpy", "pandas": "pandas", "pyarrow": "pyarrow", "pydantic": "pydantic",
              "sqlalchemy": "sqlalchemy", "yaml": "pyyaml", "fsspec": "fsspec", "dagster_pipes": "dagster-pipes"}
    provided = set(_pins(_conda_pip()))
    for module, dist in direct.items():
        if module in imported:
            assert dist in provided, f"the job imports {module} but job-conda.yaml does not install {dist}"
    assert "dagster_pipes" in imported and "pandas" in imported
