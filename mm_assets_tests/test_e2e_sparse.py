"""A source that stores a row only for a period with sales: absent rows read as missing, or as zero.

Read as missing (the default), a series whose sales stop before the data's end is forecast from its own last
sale: the check ``series_reach_data_end`` names it. Read as zero (``ingest.absent_periods: zero``), every series
runs up to its store's newest period and every published forecast of the store starts from it. A store whose rows
stop early as a whole (closed, or its data late) is named either way, also when it is alone in its run.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from mm_assets.cycle import run_cycle
from mm_assets.definitions import build_definitions
from mm_assets.warehouse import Warehouse
from mm_assets_tests.test_e2e import _check_evaluations

pytestmark = pytest.mark.e2e

STOPPED = ("S01", "I002")  # its rows stop three weeks before the data's end
LATE_STORE = "S03"  # every row of its last ten days is missing; it is trained in a run of its own


def _sparse_source(settings) -> pd.DataFrame:
    """The demo source with the rows of zero sales removed, one series' last three weeks and one store's last ten
    days removed."""
    engine = sa.create_engine(settings.source.url)
    sales = pd.read_sql("select * from sales", engine)
    end = sales["date"].max()
    stopped = (sales["store"] == STOPPED[0]) & (sales["item"] == STOPPED[1]) & (
        pd.to_datetime(sales["date"]) > pd.to_datetime(end) - pd.Timedelta(days=21))
    late = (sales["store"] == LATE_STORE) & (pd.to_datetime(sales["date"]) > pd.to_datetime(end) - pd.Timedelta(days=10))
    sparse = sales[(sales["sales"] != 0) & ~stopped & ~late]
    assert len(sparse) < 0.97 * len(sales)  # rows were removed, not only the stopped series'
    sparse.to_sql("sales", engine, index=False, if_exists="replace")
    return sparse


def _cycle(settings):
    with dg.instance_for_test() as instance:
        report = run_cycle(build_definitions(settings), instance, settings, log=lambda m: None)
        assert report.ok, report.runs
        evaluations = [r.event.asset_check_evaluation  # one per store partition
                       for r in _check_evaluations(instance, "series_datasets", "series_reach_data_end")]
        warned = [e for e in evaluations if not e.passed]
        assert evaluations and all(e.severity == dg.AssetCheckSeverity.WARN for e in evaluations)
        # the command line's report says what the UI shows: the same failed evaluations, with their descriptions
        reported = [c for c in report.failed_checks if c.name == "series_reach_data_end"]
        assert sorted(c.description for c in reported) == sorted(" ".join(e.description.split()) for e in warned)
        assert report.failed_check_counts().get(("series_reach_data_end", "WARN"), 0) == len(warned)
        filled = sum(e.asset_materialization.metadata["zero_filled_periods"].value for e in
                     instance.fetch_materializations(dg.AssetKey("series_datasets"), limit=100).records)
    preds = Warehouse(settings.storage.warehouse, list(settings.columns.ids)).read_predictions()
    return warned, filled, preds


def test_absent_rows_read_as_zero_give_a_store_one_origin_and_early_ends_are_named(tiny_project):
    settings, _ = tiny_project
    source = _sparse_source(settings)
    end = pd.Timestamp(source["date"].max())

    warned, filled, preds = _cycle(settings)
    text = " | ".join(e.description for e in warned)
    assert len(warned) == 2, text  # S01 (its stopped series) and S03 (its rows stop early as a whole)
    assert f"{'/'.join(STOPPED)} last" in text and f"{LATE_STORE} (last" in text
    assert "absent_periods: zero" in text
    origins = preds.groupby(["store", "item"])["origin"].max().map(pd.Timestamp)
    assert origins[STOPPED] == end - pd.Timedelta(days=21) and filled == 0  # forecast from its own last sale

    zero = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"absent_periods": "zero"})})
    warned, filled, preds = _cycle(zero)
    assert len(warned) == 1 and f"{LATE_STORE} (last" in warned[0].description  # still behind the others
    assert "absent_periods" not in warned[0].description  # no advice to set what is set
    assert filled >= 21  # the stopped series' three weeks, and every day without sales
    origins = preds.groupby(["store", "item"])["origin"].max().map(pd.Timestamp)
    assert set(origins.drop(LATE_STORE, level="store")) == {end}
    assert set(origins[LATE_STORE]) == {end - pd.Timedelta(days=10)}
    newest = preds[preds["origin"].map(pd.Timestamp) == end]
    assert newest.groupby(["store", "item"]).size().eq(settings.horizon).all()
    assert newest.loc[(newest["store"] == STOPPED[0]) & (newest["item"] == STOPPED[1]), "yhat"].notna().all()
