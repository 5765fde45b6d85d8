"""The Definitions object loads, and `dagster definitions validate` accepts the workspace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from mm_assets.definitions import build_definitions
from mm_assets.settings import Settings, load_settings
from mm_assets_tests.conftest import tiny_settings

ROOT = Path(__file__).resolve().parents[1]


def test_asset_graph_lineage(tmp_path):
    defs = build_definitions(tiny_settings(tmp_path))
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {"raw_sales", "series_datasets", "trained_models", "production_models", "batch_predictions",
                    "forecast_predictions", "model_metrics", "promotion_decisions", "forecast_accuracy", "backtest",
                    "backtest_metrics"}
    chain = ["raw_sales", "series_datasets", "trained_models", "production_models", "batch_predictions",
             "forecast_predictions"]
    for upstream, downstream in zip(chain, chain[1:]):
        parents = {p.to_user_string() for p in graph.get(dg.AssetKey(downstream)).parent_keys}
        assert upstream in parents, (upstream, downstream)
    assert "production_models" in {
        p.to_user_string() for p in graph.get(dg.AssetKey("promotion_decisions")).parent_keys
    }
    assert {p.to_user_string() for p in graph.get(dg.AssetKey("forecast_accuracy")).parent_keys} == {
        "forecast_predictions", "series_datasets"}
    for key in keys:
        assert graph.get(dg.AssetKey(key)).description


def test_every_asset_is_importable_by_name():
    import mm_assets.definitions as module

    by_name = {name: getattr(module, name) for name in module.ProjectAssets._fields}
    for name, asset in by_name.items():
        assert isinstance(asset, dg.AssetsDefinition), name
        assert name in {k.to_user_string() for k in asset.keys} or name == "warehouse_tables", name
    assert set().union(*(a.keys for a in by_name.values())) == set(module.defs.resolve_asset_graph().get_all_asset_keys())
    resolved = module.defs.resolve_assets_def("trained_models")
    assert (resolved.keys, resolved.check_keys) == (module.trained_models.keys, module.trained_models.check_keys)
    assert resolved.node_def is module.trained_models.node_def  # the same body, bound to the definitions' resources


def test_weekly_settings_build_weekly_ingest_partitions(tmp_path):
    defs = build_definitions(tiny_settings(tmp_path, frequency="W-MON", ingest={"start_date": "2025-01-06"}))
    partitions = defs.resolve_assets_def("raw_sales").partitions_def
    keys = partitions.get_partition_keys()
    assert keys[0] == "2025-01-06"
    assert all(d.weekday() == 0 for d in map(__import__("datetime").date.fromisoformat, keys[:10]))


def test_shipped_settings_file_equals_the_defaults():
    assert load_settings(ROOT / "mm_assets.yaml", environ={}) == Settings()


def test_shipped_settings_file_lists_every_setting():
    """It says it lists every default: a setting added without a line there is one a user never finds."""
    import yaml

    shipped = yaml.safe_load((ROOT / "mm_assets.yaml").read_text())

    def missing(model, section: dict, prefix: str) -> list[str]:
        out = []
        for name in type(model).model_fields:
            value = getattr(model, name)
            if not isinstance(section, dict) or name not in section:
                out.append(prefix + name)
            elif hasattr(type(value), "model_fields"):
                out += missing(value, section[name], f"{prefix}{name}.")
        return out

    assert missing(Settings(), shipped, "") == []


def test_dagster_definitions_validate_cli(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation successful" in proc.stdout + proc.stderr


def test_backtest_is_on_demand_and_outside_the_daily_chain(tmp_path):
    defs = build_definitions(tiny_settings(tmp_path))
    graph = defs.resolve_asset_graph()
    assert {p.to_user_string() for p in graph.get(dg.AssetKey("backtest")).parent_keys} == {"series_datasets"}
    assert {p.to_user_string() for p in graph.get(dg.AssetKey("backtest_metrics")).parent_keys} == {"backtest"}
    assert graph.get(dg.AssetKey("backtest")).group_name == "evaluation"
    job = defs.resolve_job_def("backtest_job")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == {
        "series_datasets", "backtest", "backtest_metrics"}
    jobs_started = {t.job_name for s in defs.sensors for t in s.targets} | {s.job_name for s in defs.schedules}
    assert {"train_job", "promote_job", "publish_job", "ingest_job"} <= jobs_started
    assert "backtest_job" not in jobs_started
    for name in ("train_job", "promote_job", "publish_job"):
        selected = {k.to_user_string() for k in defs.resolve_job_def(name).asset_layer.selected_asset_keys}
        assert not selected & {"backtest", "backtest_metrics"}


def test_three_groups_so_the_lineage_view_shows_the_cycle_and_stage_tags_keep_the_steps(tmp_path):
    graph = build_definitions(tiny_settings(tmp_path)).resolve_asset_graph()
    groups: dict[str, set[str]] = {}
    for key in graph.materializable_asset_keys:
        groups.setdefault(graph.get(key).group_name, set()).add(key.to_user_string())
    assert set(groups) == {"daily_cycle", "warehouse", "evaluation"}
    assert groups["daily_cycle"] == {"raw_sales", "series_datasets", "trained_models", "production_models",
                                     "batch_predictions"}
    stages = {k: graph.get(dg.AssetKey(k)).tags.get("stage") for k in groups["daily_cycle"]}
    assert stages == {"raw_sales": "ingest", "series_datasets": "datasets", "trained_models": "models",
                      "production_models": "models", "batch_predictions": "scoring"}


def test_every_asset_has_the_configured_owners_and_a_bad_owner_is_named(tmp_path):
    settings = tiny_settings(tmp_path, operations={"owners": ["team:planning", "ops@example.com"]})
    graph = build_definitions(settings).resolve_asset_graph()
    assert graph.materializable_asset_keys
    for key in graph.materializable_asset_keys:
        assert graph.get(key).owners == ["team:planning", "ops@example.com"], key
    with pytest.raises(ValueError, match=r"(?s)operations\.owners.*'planning' is neither an e-mail address nor "
                       r"team:<name>"):
        tiny_settings(tmp_path, operations={"owners": ["planning"]})


def test_descriptions_lose_no_placeholder_in_the_ui(tmp_path):
    """The UI renders descriptions as Markdown: a bare <partition> would be taken for an HTML tag and vanish."""
    import re

    graph = build_definitions(tiny_settings(tmp_path)).resolve_asset_graph()
    for key in graph.materializable_asset_keys:
        text = graph.get(key).description or ""
        outside_code = re.sub(r"`[^`]*`", "", text)
        assert not re.search(r"<[A-Za-z_][\w-]*>", outside_code), (key, text)


def test_warehouse_assets_show_their_tables_columns_with_descriptions(tmp_path):
    """The UI's column schema of each warehouse asset is the SQL table itself, every column described."""
    from mm_assets.warehouse.warehouse import Warehouse

    settings = tiny_settings(tmp_path)
    graph = build_definitions(settings).resolve_asset_graph()
    warehouse = Warehouse(settings.storage.warehouse, settings.columns.ids)
    tables = {t.name: t for t in warehouse.metadata.tables.values()}
    shown = 0
    for key in graph.materializable_asset_keys:
        metadata = graph.get(key).metadata
        name = metadata.get("dagster/table_name")
        if name is None:
            continue
        schema = metadata["dagster/column_schema"]
        assert [c.name for c in schema.columns] == [c.name for c in tables[name].columns], name
        assert all(c.description for c in schema.columns), name
        shown += 1
    assert shown == 5  # forecast_predictions, model_metrics, promotion_decisions, forecast_accuracy, backtest_metrics
    yhat = next(c for c in tables["forecast_predictions"].columns if c.name == "yhat")
    assert "units of the target" in yhat.info["description"]


def test_a_warehouse_column_without_a_description_is_an_error():
    import sqlalchemy as sa

    from mm_assets.warehouse.columns import documented

    table = sa.Table("t", sa.MetaData(), sa.Column("store", sa.String), sa.Column("mystery", sa.Float))
    with pytest.raises(KeyError, match=r"t\.mystery has no description"):
        documented(table, ["store"])


def test_the_warehouse_reference_in_docs_is_generated_from_the_tables():
    from mm_assets.warehouse.reference import reference

    committed = (Path(__file__).resolve().parents[1] / "docs" / "warehouse.md").read_text()
    assert committed == reference(), "docs/warehouse.md is stale: run `make docs`"
