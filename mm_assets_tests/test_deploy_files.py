"""Every deploy YAML is parsed, and the DevOps gate runs the project's own commands."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_devops_pipeline_runs_tests_then_the_promotion_gate():
    pipeline = yaml.safe_load((ROOT / "deploy/devops/azure-pipelines.yml").read_text())
    stages = {s["stage"]: s for s in pipeline["stages"]}
    assert list(stages)[:2] == ["test", "promotion_gate"]
    assert stages["promotion_gate"]["dependsOn"] == "test"
    # after them: the image is built and pushed, then deployed with Helm (deploy/dagster)
    assert list(stages) == ["test", "promotion_gate", "image", "deploy"]
    assert stages["image"]["dependsOn"] == "promotion_gate" and stages["deploy"]["dependsOn"] == "image"
    scripts = [step.get("script", "") for stage in stages.values() for job in stage["jobs"] for step in job["steps"]]
    assert "make test" in scripts
    gate = next(s for s in scripts if "promotion-report" in s)
    assert gate.startswith(".venv/bin/mm-assets promotion-report")


def test_every_deploy_yaml_parses():
    files = list((ROOT / "deploy").rglob("*.yml")) + list((ROOT / "deploy").rglob("*.yaml"))
    assert files
    for file in files:
        assert yaml.safe_load(file.read_text()) is not None, file
