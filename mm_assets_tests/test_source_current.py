"""raw_sales' check ``source_is_current``: a feed that stopped is said in the runs the schedule starts, not only
in ``mm-assets cycle``'s summary (empty periods ingest green, and the models retrain on the same data)."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from mm_assets.automation import range_tags
from mm_assets.definitions import build_definitions
from mm_assets_tests.conftest import TINY_END, tiny_settings

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("end, current", [(TINY_END, False), (dt.date.today() - dt.timedelta(days=1), True)],
                         ids=["stopped", "current"])
def test_the_schedules_ingest_warns_when_the_source_stopped(tmp_path, end, current):
    from mm_assets.demo.generator import DemoSpec, write_source

    settings = tiny_settings(tmp_path)
    write_source(DemoSpec(stores=2, items=2, days=30, end_date=end, seed=7), url=settings.source.url)
    defs = build_definitions(settings)
    newest = str((pd.Timestamp.now().normalize() - pd.Timedelta(days=1)).date())  # the schedule's period
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("ingest_job").execute_in_process(
            instance=instance, tags=range_tags([newest, newest]))
    assert result.success
    check = next(c for c in result.get_asset_check_evaluations() if c.check_name == "source_is_current")
    assert check.check_name == "source_is_current" and check.passed is current
    assert check.severity == dg.AssetCheckSeverity.WARN
    if not current:
        assert check.description.startswith(f"the source's newest sale is {end.isoformat()}, ")
        assert "check the feed" in check.description
        assert check.metadata["newest_sale"].value == end.isoformat()
