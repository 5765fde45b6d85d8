"""The checks' rules, the reports the UI shows and what the warehouse is sent are plain Python: importing them
loads no Dagster (the assets do the wiring)."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("package", ["checks", "reporting", "warehouse"])
def test_the_rules_and_reports_import_without_dagster(package):
    code = (f"import sys, pkgutil, importlib, mm_assets.{package} as c; "
            f"[importlib.import_module(f'mm_assets.{package}.{{m.name}}') for m in pkgutil.iter_modules(c.__path__)]; "
            "bad = sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in ('dagster', 'dagster_azure')}); "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
