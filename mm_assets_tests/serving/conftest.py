"""Fixtures of the online-scoring tests: a tiny registry (4 series) with a production registry, built in seconds.

Series (daily, horizon 14, id columns store/item):
  S1/I1  linear, trained twice (v1, v2); v1 is the production champion  → champion v1
  S1/I2  linear, v1, no champion                                        → latest v1
  S2/I1  linear, v1, no champion                                        → latest v1
  S2/I2  baseline (too short for the linear model)                      → latest v1

The serving tests run in the serving environment (`.venv-serve`, `make test` does it); in another environment
that lacks the inference server, the tests marked `serving` are deselected rather than failing on import.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

HORIZON = 14
SERIES = [("S1", "I1"), ("S1", "I2"), ("S2", "I1"), ("S2", "I2")]
CHAMPION = "S1/I1"


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
    from mm_assets.serving.synthetic import add_champions, train_models, write_registry
    from mm_assets.settings import Settings

    root = tmp_path_factory.mktemp("serving")
    settings = Settings.model_validate(serving_settings_dict(root))
    linear = train_models(settings, 4, days=150, seed=1)
    short = train_models(settings, 1, days=25, seed=9)
    assert [o.model_type for _, o in linear] == ["linear"] * 4 and short[0][1].model_type == "baseline"
    first = write_registry(settings, SERIES, [linear[0], linear[1], linear[2], short[0]], run_id="r1")
    write_registry(settings, SERIES[:1], [linear[3]], run_id="r2")  # S1/I1 v2 (not promoted)
    add_champions(settings.storage.production_registry, first[first["series_key"] == CHAMPION])
    path = root / "mm_assets.yaml"
    path.write_text(settings.model_dump_json())
    return root, settings, path, first
