"""Shared fixtures: a tiny project (demo source, lake, registries) in a temporary folder."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mm_assets.settings import Settings

TINY_END = dt.date(2026, 6, 30)


def tiny_settings(root: Path, **overrides) -> Settings:
    """Settings for a small project rooted at ``root`` (horizon 14 keeps training fast)."""
    data = {
        "source": {"url": f"sqlite:///{root}/source.db"},
        "storage": {
            "lake": str(root / "lake"),
            "registry": f"sqlite:///{root}/registry.db",
            "warehouse": f"sqlite:///{root}/warehouse.db",
        },
        "horizon": 14,
        "ingest": {"start_date": "2025-12-01"},
        "runner": {"max_concurrency": 2, "series_per_task": 5, "mini_batch_timeout_s": 60},
        "schedule": {"partitions_per_run": 2},
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    return Settings.model_validate(data)


@pytest.fixture
def tiny_project(tmp_path, monkeypatch):
    """A demo source of 3 stores x 4 items x 212 days, settings pointing into tmp_path."""
    from mm_assets.demo.generator import DemoSpec, write_source

    monkeypatch.chdir(tmp_path)
    spec = DemoSpec(stores=3, items=4, days=212, end_date=TINY_END, seed=7)
    settings = tiny_settings(tmp_path)
    rows = write_source(spec, url=settings.source.url)
    assert rows > 0
    return settings, spec
