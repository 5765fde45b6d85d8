"""Fixtures of the online-scoring tests: a tiny registry (4 series) with a production registry and the series'
datasets in the lake, built in seconds.

Series (daily, horizon 14, id columns store/item; history up to 2026-06-30, then a plan of ``PLAN_DAYS`` days):
  S1/I1  linear, trained twice (v1, v2); v1 is the production champion  → champion v1
  S1/I2  linear, v1, the production champion                            → champion v1
  S2/I1  linear, v1, no champion (the gate rejected it)                 → its baseline (opt-in: latest v1)
  S2/I2  baseline model (too short for the linear model), no champion   → its baseline (opt-in: latest v1)

The serving tests run in the serving environment (`.venv-serve`, `make test` does it); in another environment
that lacks the inference server, the tests marked `serving` are deselected rather than failing on import.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

import pytest

HORIZON = 14
SERIES = [("S1", "I1"), ("S1", "I2"), ("S2", "I1"), ("S2", "I2")]
CHAMPION = "S1/I1"
CHAMPIONS = ["S1/I1", "S1/I2"]
PLAN_DAYS = 20
END = dt.date(2026, 6, 30)


@pytest.fixture(autouse=True)
def steady_clock(monkeypatch):
    """Answers compared whole across requests and services carry ``checked_at`` (the worker's last registry check,
    to the second): fixed here, so two answers of one forecast compare equal whatever second they were made in.
    The real server's answers (``test_server.py``, another process) carry the real time, and are checked there."""
    from mm_assets.serving import answer

    monkeypatch.setattr(answer, "checked_at", lambda monotonic_at: "2026-07-01T00:00:00Z")


def pytest_collection_modifyitems(config, items):
    if importlib.util.find_spec("azureml_inference_server_http") is not None:
        return
    deselected = [item for item in items if item.get_closest_marker("serving")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("serving")]


def serving_settings_dict(root: Path) -> dict:
    return {
        "storage": {
            "lake": str(root / "lake"),
            "registry": f"sqlite:///{root}/registry.db",
            "warehouse": f"sqlite:///{root}/warehouse.db",
            "production_registry": f"sqlite:///{root}/production.db",
        },
        "horizon": HORIZON,
        "model": {"type": "linear"},
    }


@pytest.fixture(scope="session")
def serving_project(tmp_path_factory):
    """(root, settings, settings file, registered rows) of the tiny registry described above."""
    import pandas as pd

    from mm_assets.serving.synthetic import (
        add_champions,
        daily_rows,
        plan_rows,
        train_models,
        write_datasets,
        write_registry,
    )
    from mm_assets.settings import Settings

    root = tmp_path_factory.mktemp("serving")
    settings = Settings.model_validate(serving_settings_dict(root))
    linear = train_models(settings, 4, days=150, seed=1, end=END)
    short = train_models(settings, 1, days=25, seed=9, end=END)
    assert [o.model_type for _, o in linear] == ["linear"] * 4 and short[0][1].model_type == "baseline"
    first = write_registry(settings, SERIES, [linear[0], linear[1], linear[2], short[0]], run_id="r1", promote=False)
    write_registry(settings, SERIES[:1], [linear[3]], run_id="r2", promote=False)  # S1/I1 v2 (not promoted)
    add_champions(settings.storage.production_registry, first[first["series_key"].isin(CHAMPIONS)])
    # each series' rows as its served model was trained on them (train_models: seed + k), then its plan
    histories = [daily_rows(150, 1, END), daily_rows(150, 2, END), daily_rows(150, 3, END), daily_rows(25, 9, END)]
    write_datasets(settings, SERIES, [pd.concat([h, plan_rows(PLAN_DAYS, k, END)], ignore_index=True)
                                      for k, h in enumerate(histories)])
    path = root / "mm_assets.yaml"
    path.write_text(settings.model_dump_json())
    return root, settings, path, first


def relocated(settings, tmp_path: Path):
    """The settings with copies of the lake and both registries, the registries' model addresses pointing into the
    copied lake: a test may damage a model's file, or rewrite any other file, without touching the shared one."""
    import shutil
    import sqlite3

    lake = tmp_path / "lake"
    shutil.copytree(settings.storage.lake, lake)
    storage = {"lake": str(lake)}
    for name, table in (("registry", "model_versions"), ("production_registry", "champions")):
        path = tmp_path / f"{name}.db"
        shutil.copy(getattr(settings.storage, name).removeprefix("sqlite:///"), path)
        with sqlite3.connect(path) as conn:
            conn.execute(f"UPDATE {table} SET artifact_uri = replace(artifact_uri, ?, ?)",
                         (str(settings.storage.lake), str(lake)))
        conn.close()
        storage[name] = f"sqlite:///{path}"
    return settings.model_copy(update={"storage": settings.storage.model_copy(update=storage)})
