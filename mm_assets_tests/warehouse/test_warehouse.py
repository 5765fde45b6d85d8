"""Tests of the warehouse: idempotent, transactional publishing of forecast partitions."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from mm_assets.warehouse import Warehouse
from mm_assets.warehouse import warehouse as warehouse_module

IDS = ["store", "item"]


def predictions(store: str, items: list[str], origin: str, yhat: float, horizon: int = 7) -> pd.DataFrame:
    origin_ts = pd.Timestamp(origin)
    frames = [
        pd.DataFrame(
            {
                "store": store,
                "item": item,
                "series_key": f"{store}/{item}",
                "origin": origin_ts,
                "ds": pd.date_range(origin_ts + pd.Timedelta(days=1), periods=horizon, freq="D"),
                "yhat": yhat,
                "model_type": "linear",
                "model_version": 1,
                "model_source": "model",
                "note": None,
            }
        )
        for item in items
    ]
    return pd.concat(frames, ignore_index=True)


def publish(wh: Warehouse, frame: pd.DataFrame, partition_key: str, run_id: str) -> int:
    """Forecasts alone, the way the publishing asset writes them with the other tables."""
    return wh.publish_partition(partition_key, run_id, frame)["forecast_predictions"]


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/warehouse.db"


@pytest.fixture
def wh(url) -> Warehouse:
    return Warehouse(url, IDS)


def check_current_forecasts(wh: Warehouse) -> None:
    """The view BI reads: each series from its own newest origin (I2 stopped a day early: its older origin), a
    retired store left out, back once it publishes again. Shared with the PostgreSQL test."""
    publish(wh, predictions("S1", ["I1", "I2"], "2025-05-29", 4.0), "S1", run_id="r1")
    publish(wh, predictions("S1", ["I1"], "2025-05-30", 5.0), "S1", run_id="r2")
    publish(wh, predictions("S2", ["I1"], "2025-05-30", 6.0), "S2", run_id="r2")
    wh.record_retired(["S2"])
    view = wh.current_forecasts()
    origins = view.groupby(["store", "item"])["origin"].agg(["min", "max", "size"])
    assert origins.index.tolist() == [("S1", "I1"), ("S1", "I2")]
    assert (origins["min"] == origins["max"]).all() and (origins["size"] == 7).all()
    assert pd.Timestamp(origins.loc[("S1", "I1"), "max"]) == pd.Timestamp("2025-05-30")
    assert pd.Timestamp(origins.loc[("S1", "I2"), "max"]) == pd.Timestamp("2025-05-29")
    assert set(view.loc[view["item"] == "I1", "yhat"]) == {5.0}
    assert list(view.columns) == [c.name for c in wh.predictions.columns]
    publish(wh, predictions("S2", ["I1"], "2025-05-31", 6.0), "S2", run_id="r3")  # the store came back
    assert set(wh.current_forecasts()["store"]) == {"S1", "S2"} and wh.retired_partitions() == []
    assert len(Warehouse(wh.url, IDS).current_forecasts()) == 21  # opened again: the view is kept as it is


def test_the_current_forecasts_view_holds_each_series_from_its_newest_origin_without_retired_stores(wh):
    check_current_forecasts(wh)


def test_publish_writes_the_rows(wh):
    n = publish(wh, predictions("S1", ["I1", "I2"], "2025-05-30", 5.0), "S1", run_id="r1")
    assert n == 14
    out = wh.read_predictions()
    assert len(out) == 14 == wh.count()
    assert set(out["partition_key"]) == {"S1"} and set(out["run_id"]) == {"r1"}
    assert (pd.to_datetime(out["origin"]) == pd.Timestamp("2025-05-30")).all()
    assert set(out["yhat"]) == {5.0}
    assert out["published_at"].notna().all()


def test_republishing_a_partition_and_origin_replaces_it(wh):
    publish(wh, predictions("S1", ["I1", "I2"], "2025-05-30", 5.0), "S1", run_id="r1")
    publish(wh, predictions("S2", ["I1"], "2025-05-30", 9.0), "S2", run_id="r1")
    before = wh.count()
    publish(wh, predictions("S1", ["I1", "I2"], "2025-05-30", 6.0), "S1", run_id="r2")
    assert wh.count() == before == 21  # no duplicates
    s1 = wh.read_predictions(["S1"])
    assert len(s1) == 14
    assert set(s1["yhat"]) == {6.0} and set(s1["run_id"]) == {"r2"}
    s2 = wh.read_predictions(["S2"])  # another partition is untouched
    assert len(s2) == 7 and set(s2["yhat"]) == {9.0} and set(s2["run_id"]) == {"r1"}


def test_a_different_origin_is_kept_beside_the_previous_one(wh):
    publish(wh, predictions("S1", ["I1"], "2025-05-30", 5.0), "S1", run_id="r1")
    publish(wh, predictions("S1", ["I1"], "2025-05-31", 7.0), "S1", run_id="r2")
    out = wh.read_predictions(["S1"])
    assert len(out) == 14
    by_origin = out.groupby(pd.to_datetime(out["origin"]))["yhat"].agg(["size", "max"])
    assert by_origin.to_dict("index") == {
        pd.Timestamp("2025-05-30"): {"size": 7, "max": 5.0},
        pd.Timestamp("2025-05-31"): {"size": 7, "max": 7.0},
    }


def test_a_series_gone_from_the_data_keeps_its_rows_when_its_store_is_republished_from_the_same_origin(
        wh, monkeypatch):
    """I3 was delisted after a publish: a re-publish from a new origin keeps its last forecast, and so must one
    from the same origin (a re-run of the day), not delete it with the store's rows of that origin."""
    monkeypatch.setattr(warehouse_module, "SERIES_PER_DELETE", 1)  # the published series' DELETEs in chunks
    publish(wh, predictions("S1", ["I1", "I2", "I3"], "2025-05-30", 5.0), "S1", run_id="r1")
    publish(wh, predictions("S1", ["I1", "I2", "I3"], "2025-06-02", 4.0), "S1", run_id="r1b")  # taken back below
    publish(wh, predictions("S1", ["I1", "I2"], "2025-05-30", 6.0), "S1", run_id="r2")
    s1 = wh.read_predictions(["S1"])
    got = s1.groupby(["item", pd.to_datetime(s1["origin"])])["yhat"].agg(["size", "max"]).to_dict("index")
    assert got == {("I1", pd.Timestamp("2025-05-30")): {"size": 7, "max": 6.0},
                   ("I2", pd.Timestamp("2025-05-30")): {"size": 7, "max": 6.0},
                   ("I3", pd.Timestamp("2025-05-30")): {"size": 7, "max": 5.0}}  # kept; the later origin is gone
    publish(wh, predictions("S1", ["I1", "I2"], "2025-05-30", 7.0), "S1", run_id="r3")  # and again: no duplicate
    assert wh.count() == 21


def test_a_series_gone_from_the_stores_data_leaves_the_origin_it_was_published_from_again(wh):
    """Re-published from the same origin, a store whose dataset no longer has I3 (deleted from the source) kept
    I3's forecast of that origin, and current_forecasts showed it beside the store's current series, from the same
    origin: nothing told BI it was gone. Its rows of that origin go now (its older origin's stay, history), while
    a series still in the data that was not published this time (its scoring failed) keeps them."""
    publish(wh, predictions("S1", ["I1", "I2", "I3"], "2025-05-29", 4.0), "S1", run_id="r0")
    publish(wh, predictions("S1", ["I1", "I2", "I3"], "2025-05-30", 5.0), "S1", run_id="r1")
    in_data = pd.DataFrame({"store": ["S1", "S1"], "item": ["I1", "I2"]})
    counts = wh.publish_partition("S1", "r2", predictions("S1", ["I1"], "2025-05-30", 6.0), in_data=in_data)
    assert counts["left_the_data"] == 1
    current = wh.current_forecasts()
    origins = current.groupby("item")["origin"].max().map(lambda v: str(pd.Timestamp(v).date())).to_dict()
    assert origins == {"I1": "2025-05-30", "I2": "2025-05-30", "I3": "2025-05-29"}  # I3: no longer current
    again = wh.publish_partition("S1", "r3", predictions("S1", ["I1", "I2"], "2025-05-30", 7.0), in_data=in_data)
    assert again["left_the_data"] == 0 and wh.count() == 3 * 7 + 2 * 7


def test_an_origin_taken_back_removes_the_forecasts_made_from_it_and_keeps_older_ones(wh):
    """The source's newest day was withdrawn: yesterday's forecasts from it must not stay as the latest."""
    publish(wh, predictions("S1", ["I1", "I2"], "2025-05-29", 4.0), "S1", run_id="r0")
    publish(wh, predictions("S1", ["I1", "I2"], "2025-05-31", 7.0), "S1", run_id="r1")
    publish(wh, predictions("S2", ["I1"], "2025-05-31", 9.0), "S2", run_id="r1")
    publish(wh, predictions("S1", ["I1", "I2"], "2025-05-30", 5.0), "S1", run_id="r2")
    s1 = wh.read_predictions(["S1"])
    origins = s1.groupby(pd.to_datetime(s1["origin"]))["yhat"].max().to_dict()
    assert origins == {pd.Timestamp("2025-05-29"): 4.0, pd.Timestamp("2025-05-30"): 5.0}
    assert len(wh.read_predictions(["S2"])) == 7  # another store's newer origin is its own


def test_a_series_forecast_again_from_an_older_origin_leaves_its_siblings_forecasts_of_that_origin(wh, monkeypatch):
    """A week without a row for one series: it is forecast again from its own last week, while the store's other
    series move on. Their forecasts made from that older week are history (what forecast_accuracy judges) and
    stay; the straggler's own rows from its origin on are replaced, and so is everything from the newest origin on."""
    monkeypatch.setattr(warehouse_module, "SERIES_PER_DELETE", 2)  # the stragglers' DELETEs in chunks
    publish(wh, predictions("S1", ["I1", "I2", "I3", "I4"], "2025-05-30", 5.0), "S1", run_id="r1")
    late = ["I2", "I3", "I4"]
    publish(wh, pd.concat([predictions("S1", ["I1"], "2025-05-31", 6.0),
                           predictions("S1", late, "2025-05-30", 7.0)]), "S1", run_id="r2")
    s1 = wh.read_predictions(["S1"])
    got = s1.groupby([pd.to_datetime(s1["origin"]), "item"])["yhat"].agg(["size", "max"]).to_dict("index")
    assert got == {(pd.Timestamp("2025-05-30"), "I1"): {"size": 7, "max": 5.0},  # kept: I1's history
                   **{(pd.Timestamp("2025-05-30"), i): {"size": 7, "max": 7.0} for i in late},  # replaced
                   (pd.Timestamp("2025-05-31"), "I1"): {"size": 7, "max": 6.0}}
    # the stragglers catch up: their rows from the newer origin replace nothing of I1's older ones
    publish(wh, predictions("S1", ["I1", "I2", "I3", "I4"], "2025-05-31", 8.0), "S1", run_id="r3")
    s1 = wh.read_predictions(["S1"])
    assert len(s1) == 8 * 7 and set(s1.loc[pd.to_datetime(s1["origin"]) == "2025-05-31", "yhat"]) == {8.0}


def _accuracy_points(items, origin: str, actual: float) -> pd.DataFrame:
    frame = predictions("S1", list(items), origin, yhat=5.0, horizon=2).drop(columns=["series_key", "note"])
    return frame.assign(lead=frame.groupby("item").cumcount() + 1, actual=actual, baseline_yhat=4.0)


def _judged_actuals(wh) -> dict:
    with wh.engine.connect() as conn:
        rows = conn.execute(sa.select(wh.accuracy.c.item, wh.accuracy.c.actual)).all()
    return {item: sorted({a for i, a in rows if i == item}) for item in {i for i, _ in rows}}


@pytest.mark.parametrize("judged", [True, False], ids=["span", "origins"])
def test_judging_again_keeps_the_rows_of_a_series_gone_from_the_data_and_counts_only_what_it_wrote(wh, judged):
    span = (pd.Timestamp("2025-05-30").to_pydatetime(), pd.Timestamp("2025-05-31").to_pydatetime())
    first = wh.publish_accuracy("S1", "r1", _accuracy_points(["I1", "I2", "I3"], "2025-05-30", 1.0),
                                judged=span if judged else None)
    assert first == (6, 0)
    present = pd.DataFrame({"store": ["S1", "S1"], "item": ["I1", "I3"]})  # I2 left the source
    again = wh.publish_accuracy("S1", "r2", _accuracy_points(["I1", "I3"], "2025-05-30", 2.0),
                                judged=span if judged else None, present=present)
    assert again == (4, 0)
    assert _judged_actuals(wh) == {"I1": [2.0], "I2": [1.0], "I3": [2.0]}
    assert wh.accuracy_sums("S1", span[0], pd.Timestamp("2025-05-30").to_pydatetime())["points"].sum() == 6


def test_publish_rejects_a_frame_without_the_needed_columns(wh):
    frame = predictions("S1", ["I1"], "2025-05-30", 5.0).drop(columns=["model_source"])
    with pytest.raises(ValueError, match="model_source"):
        publish(wh, frame, "S1", run_id="r1")


def test_failure_mid_publish_keeps_the_previous_rows(wh):
    publish(wh, predictions("S1", ["I1", "I2"], "2025-05-30", 5.0), "S1", run_id="r1")
    # > 10,000 rows: inserted in two chunks, and the second chunk holds a row the NOT NULL yhat rejects
    items = [f"I{i:04d}" for i in range(1500)]
    bad = predictions("S1", items, "2025-05-30", 6.0)
    assert len(bad) > 10_000
    bad.loc[len(bad) - 1, "yhat"] = float("nan")
    with pytest.raises(sa.exc.IntegrityError):
        publish(wh, bad, "S1", run_id="r2")
    out = wh.read_predictions(["S1"])
    assert len(out) == 14  # neither deleted nor half-inserted
    assert set(out["run_id"]) == {"r1"} and set(out["yhat"]) == {5.0}


def test_error_after_the_delete_rolls_the_delete_back(wh, monkeypatch):
    publish(wh, predictions("S1", ["I1", "I2"], "2025-05-30", 5.0), "S1", run_id="r1")

    real_insert = warehouse_module.insert_frame

    def first_row_then_fail(conn, table, frame, chunk_rows=10_000):
        real_insert(conn, table, frame.iloc[:1], chunk_rows)
        raise OSError("connection lost mid-publish")

    monkeypatch.setattr(warehouse_module, "insert_frame", first_row_then_fail)
    with pytest.raises(OSError, match="mid-publish"):
        publish(wh, predictions("S1", ["I1", "I2"], "2025-05-30", 6.0), "S1", run_id="r2")
    out = wh.read_predictions(["S1"])
    assert len(out) == 14
    assert set(out["run_id"]) == {"r1"} and set(out["yhat"]) == {5.0}


def test_schema_mismatch_raises_a_clear_error(url):
    Warehouse(url, ["store", "item"])
    with pytest.raises(RuntimeError, match=r"columns\.ids changed") as info:
        Warehouse(url, ["region", "store", "item"])
    assert "region" in str(info.value) and "forecast_predictions" in str(info.value)
    Warehouse(url, ["store", "item"])  # the matching schema still opens


def test_existing_table_missing_a_new_column_is_migrated(tmp_path):
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path}/old.db"
    Warehouse(url, ["store", "item"])
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # an older version's model_metrics, without the rmse column
        conn.execute(sa.text("ALTER TABLE model_metrics DROP COLUMN rmse"))
    assert "rmse" not in {c["name"] for c in sa.inspect(engine).get_columns("model_metrics")}
    wh = Warehouse(url, ["store", "item"])
    assert "rmse" in {c["name"] for c in sa.inspect(engine).get_columns("model_metrics")}
    assert wh.read_table("model_metrics").empty


# ---- backtest_metrics ------------------------------------------------------------------------------------------
def _backtest_rows(run: str, wape: float, items=("I1", "I2")) -> pd.DataFrame:
    series = pd.DataFrame({"store": "S1", "item": list(items), "model_type": "linear", "scope": "series",
                           "horizon": 2, "gap": 2, "origins": 10, "n_points": 20, "wape": wape, "bias": -0.1,
                           "mape": 0.3, "mase": 0.8, "beats_naive": [True, False], "beats_snaive": [True, True],
                           "sum_abs_error": 5.0, "sum_error": -2.0, "sum_actual": 20.0, "backtest_run_id": run})
    pooled = pd.DataFrame({"model_type": ["linear"], "scope": ["partition"], "horizon": [2], "gap": [2],
                           "origins": [10], "n_points": [40], "wape": [wape], "series": [2],
                           "beat_naive_share": [0.5], "beat_snaive_share": [1.0], "backtest_run_id": [run],
                           "store": [""], "item": [""]})
    return pd.concat([series, pooled], ignore_index=True)


def test_backtest_metrics_are_replaced_per_partition_and_run_and_kept_across_runs(wh):
    assert wh.publish_backtest("S1", "pub1", _backtest_rows("bt1", 0.2)) == 3
    assert wh.publish_backtest("S1", "pub2", _backtest_rows("bt1", 0.3)) == 3  # same backtest run: replaced
    table = wh.read_table("backtest_metrics")
    assert len(table) == 3 and set(table["wape"]) == {0.3} and set(table["run_id"]) == {"pub2"}
    wh.publish_backtest("S1", "pub3", _backtest_rows("bt2", 0.25))  # another backtest run: history
    wh.publish_backtest("S2", "pub3", _backtest_rows("bt2", 0.4))  # another partition, same ids allowed
    table = wh.read_table("backtest_metrics")
    assert len(table) == 9
    series = table[(table["scope"] == "series") & (table["backtest_run_id"] == "bt1")].set_index("item")
    assert series.loc["I1", "beats_naive"] == 1 and series.loc["I2", "beats_naive"] == 0
    pooled = table[table["scope"] == "partition"]
    assert set(pooled["item"]) == {""} and set(pooled["series"]) == {2}


def test_backtest_metrics_reject_an_unknown_scope_and_keep_what_was_there(wh):
    wh.publish_backtest("S1", "pub1", _backtest_rows("bt1", 0.2))
    bad = _backtest_rows("bt1", 0.9).assign(scope="store")
    with pytest.raises(ValueError, match="scope"):
        wh.publish_backtest("S1", "pub2", bad)
    assert set(wh.read_table("backtest_metrics")["wape"]) == {0.2}


def _metrics(versions: dict[str, int], run: str) -> pd.DataFrame:
    from mm_assets.warehouse.warehouse import METRIC_COLUMNS

    rows = [{"store": "S1", "item": item, "model_type": "linear", "version": v, "status": "trained", "reason": None,
             "accuracy": 0.8, "wape": 0.2, "mase": 0.9, "smape": 0.2, "mape": 0.2, "rmse": 1.0, "n_obs": 100,
             "data_start": pd.Timestamp("2025-01-01"), "data_end": pd.Timestamp("2025-05-30"),
             "trained_at": pd.Timestamp("2025-05-31"), "training_run_id": run} for item, v in versions.items()]
    return pd.DataFrame(rows)[["store", "item", *METRIC_COLUMNS]]


def test_model_metrics_keep_the_latest_and_their_history_every_version(wh):
    empty = predictions("S1", ["I1"], "2025-05-30", 1.0).iloc[0:0]
    wh.publish_partition("S1", "p1", empty, metrics=_metrics({"I1": 1, "I2": 1}, "t1"))
    wh.publish_partition("S1", "p2", empty, metrics=_metrics({"I1": 2, "I2": 1}, "t2"))  # I2 not retrained
    wh.publish_partition("S1", "p3", empty, metrics=_metrics({"I1": 2, "I2": 1}, "t2"))  # re-published
    latest = wh.read_table("model_metrics")
    assert sorted(zip(latest["item"], latest["version"])) == [("I1", 2), ("I2", 1)]
    history = wh.read_table("model_metrics_history")
    assert sorted(zip(history["item"], history["version"])) == [("I1", 1), ("I1", 2), ("I2", 1)]


def test_model_metrics_name_a_newer_failed_training_and_the_history_does_not_carry_it(wh):
    empty = predictions("S1", ["I1"], "2025-05-30", 1.0).iloc[0:0]
    metrics = _metrics({"I1": 1, "I2": 1}, "t1").assign(training_failed_at=[pd.Timestamp("2025-06-07"), pd.NaT],
                                                        training_error=["ValueError: boom", None])
    wh.publish_partition("S1", "p1", empty, metrics=metrics)
    latest = wh.read_table("model_metrics").set_index("item")
    assert latest.loc["I1", "training_error"] == "ValueError: boom"
    assert pd.Timestamp(latest.loc["I1", "training_failed_at"]) == pd.Timestamp("2025-06-07")
    with wh.engine.connect() as conn:
        nulls = conn.execute(sa.text("SELECT item FROM model_metrics WHERE training_failed_at IS NULL "
                                     "AND training_error IS NULL")).scalars().all()
    assert nulls == ["I2"]
    assert "training_error" not in wh.read_table("model_metrics_history").columns


def test_newest_predictions_are_each_series_newest_origin_only(wh):
    """What the cycle's summary counts: served forecasts now, not every day's ever published."""
    publish(wh, predictions("S1", ["I1", "I2"], "2025-05-30", 5.0), "S1", run_id="r1")
    publish(wh, predictions("S1", ["I1"], "2025-05-31", 7.0), "S1", run_id="r2")  # I2 discontinued: stays at 30
    publish(wh, predictions("S2", ["I1"], "2025-05-31", 9.0), "S2", run_id="r2")
    out = wh.newest_predictions(["S1"])
    assert list(out.columns) == ["store", "item", "origin", "model_source"]
    newest = out.groupby("item")["origin"].agg(["min", "max", "size"])
    assert newest.loc["I1"].tolist() == [pd.Timestamp("2025-05-31"), pd.Timestamp("2025-05-31"), 7]
    assert newest.loc["I2"].tolist() == [pd.Timestamp("2025-05-30"), pd.Timestamp("2025-05-30"), 7]
    assert set(out["store"]) == {"S1"} and len(wh.newest_predictions(["S1", "S2"])) == 21
    assert wh.newest_predictions([]).empty


def test_versions_whose_publish_never_came_reach_the_metrics_history(wh, tmp_path):
    """A run stopped at its publish (the warehouse down) left its trained versions out of model_metrics_history
    for good: the next publish has only each series' latest. The versions trained since the history's newest are
    published with it (a BI trial found versions 4 and 6 missing, with 76 promotion decisions naming version 4)."""
    import datetime as dt

    from mm_assets.registry import ModelRegistry
    from mm_assets.warehouse.publish import metrics_frame
    from mm_assets_tests.registry.test_model_registry import model_rows

    registry = ModelRegistry(f"sqlite:///{tmp_path}/registry.db")
    day = dt.datetime(2025, 6, 1)
    for n in range(3):  # versions 1, 2, 3 of S1/I1 and S1/I2, a day apart; S2's of day one only
        registry.register(model_rows([("S1", "I1"), ("S1", "I2")] + ([("S2", "I1")] if n == 0 else [])),
                          run_id=f"r{n + 1}", trained_at=day + dt.timedelta(days=n))
    ids = ["store", "item"]
    empty = predictions("S1", ["I1"], "2025-05-30", 1.0).iloc[0:0]
    first = registry.rows_of(["S1/I1", "S1/I2", "S2/I1"], [1, 1, 1])
    for key in ("S1", "S2"):  # day one published; days two and three's publish never came
        wh.publish_partition(key, "p1", empty, metrics=metrics_frame(first[first["partition_key"] == key], ids))
    after = wh.newest_in_history(["S1", "S2"])
    assert after == {"S1": day, "S2": day}
    missed = metrics_frame(registry.trained_after(after), ids)
    assert sorted(zip(missed["item"], missed["version"])) == [("I1", 2), ("I1", 3), ("I2", 2), ("I2", 3)]
    wh.publish_partition("S1", "p3", empty, metrics=metrics_frame(registry.latest(["S1"]), ids), missed=missed)
    history = wh.read_table("model_metrics_history")
    mine = history[history["store"] == "S1"]
    assert sorted(zip(mine["item"], mine["version"])) == [(i, v) for i in ("I1", "I2") for v in (1, 2, 3)]
    latest = wh.read_table("model_metrics")
    assert sorted(latest.loc[latest["store"] == "S1", "version"]) == [3, 3]  # the latest only
    assert registry.trained_after(wh.newest_in_history(["S1"])).empty  # nothing missed any more


def test_retention_deletes_a_stores_rows_of_older_origins_in_the_publishing_transaction(wh):
    check_retention(wh)


def check_retention(wh: Warehouse) -> None:
    """``storage.forecast_retention_days``: a store's publish deletes its own forecasts (and the accuracy publish
    its judged points) of origins more than that many days before the newest it publishes; other stores, and the
    origins within the days, stay. Shared with the PostgreSQL test (the counts are the database's rowcounts)."""
    from mm_assets.warehouse.warehouse import retention_cutoff

    for day in ("2025-05-01", "2025-05-10", "2025-05-20"):
        publish(wh, predictions("S1", ["I1", "I2"], day, 4.0), "S1", run_id=f"r{day}")
        wh.publish_accuracy("S1", f"r{day}", _accuracy_points(["I1", "I2"], day, 3.0))
    publish(wh, predictions("S2", ["I1"], "2025-05-01", 6.0), "S2", run_id="r0")
    newest = predictions("S1", ["I1", "I2"], "2025-05-31", 5.0)
    newest_origin = newest["origin"].max()
    assert retention_cutoff(newest_origin, None) is None and retention_cutoff(None, 15) is None
    keep_from = retention_cutoff(newest_origin, 15)  # 2025-05-16: 05-01 and 05-10 go, 05-20 stays
    counts = wh.publish_partition("S1", "r5", newest, keep_from=keep_from)
    assert counts["forecast_predictions"] == 14 and counts["pruned_forecast_predictions"] == 2 * 2 * 7
    written, pruned = wh.publish_accuracy("S1", "r5", _accuracy_points(["I1", "I2"], "2025-05-20", 4.0),
                                          keep_from=keep_from)
    assert (written, pruned) == (4, 2 * 2 * 2)
    kept = wh.read_table("forecast_predictions")
    origins = kept.groupby("store")["origin"].agg(lambda o: sorted(str(pd.Timestamp(v).date()) for v in set(o)))
    assert origins.to_dict() == {"S1": ["2025-05-20", "2025-05-31"], "S2": ["2025-05-01"]}
    judged = wh.read_table("forecast_accuracy")
    assert {str(pd.Timestamp(v).date()) for v in judged["origin"]} == {"2025-05-20"}
    assert wh.publish_partition("S1", "r6", newest)["forecast_predictions"] == 14  # unset: nothing more goes
    assert wh.count() == 14 + 14 + 7


def test_publish_log_records_each_store_a_run_finished_with_its_newest_origin(wh):
    check_publish_log(wh)


def check_publish_log(wh: Warehouse) -> None:
    """``publish_log``: one row per store and run that finished it, with the store's newest origin and the series
    forecast from it (a series whose rows stopped a day early is not counted); recording the same run again
    replaces its row; a store without forecasts has a row without an origin; retention deletes the rows of older
    origins but never the run's own. Shared with the PostgreSQL test."""
    def log() -> dict:
        frame = wh.read_table("publish_log")
        return {(r.partition_key, r.run_id): (None if pd.isna(r.origin) else str(pd.Timestamp(r.origin).date()),
                                              r.series) for r in frame.itertuples()}

    publish(wh, predictions("S1", ["I1", "I2"], "2025-05-29", 4.0), "S1", run_id="r1")
    wh.record_published("S1", "r1")
    wh.record_published("S2", "r1")  # no forecast of S2 yet
    assert log() == {("S1", "r1"): ("2025-05-29", 2), ("S2", "r1"): (None, 0)}
    publish(wh, predictions("S1", ["I1"], "2025-05-30", 5.0), "S1", run_id="r2")
    wh.record_published("S1", "r2")
    wh.record_published("S1", "r2")  # the same run again (a retried step): replaced
    assert log()[("S1", "r2")] == ("2025-05-30", 1) and len(log()) == 3
    publish(wh, predictions("S2", ["I1"], "2025-05-30", 6.0), "S2", run_id="r2")  # not recorded: still publishing
    whole = sa.text(  # what docs/warehouse.md tells a dashboard: each store at its newest whole publish
        "SELECT f.partition_key, f.item FROM forecast_predictions f JOIN (SELECT partition_key, MAX(origin) AS origin "
        "FROM publish_log GROUP BY partition_key) p ON f.partition_key = p.partition_key AND f.origin = p.origin")
    with wh.engine.connect() as conn:
        assert sorted(set(conn.execute(whole).all())) == [("S1", "I1")]
        assert conn.execute(sa.text("SELECT COUNT(DISTINCT partition_key) FROM publish_log "
                                    "WHERE origin >= '2025-05-30'")).scalar_one() == 1
    published = pd.to_datetime(wh.read_table("publish_log")["published_at"])
    assert published.notna().all()
    publish(wh, predictions("S1", ["I1"], "2025-06-20", 5.0), "S1", run_id="r3")
    wh.record_published("S1", "r3", keep_from=pd.Timestamp("2025-05-30").to_pydatetime())
    assert log() == {("S1", "r2"): ("2025-05-30", 1), ("S1", "r3"): ("2025-06-20", 1), ("S2", "r1"): (None, 0)}
    wh.record_published("S1", "r3", keep_from=pd.Timestamp("2025-07-01").to_pydatetime())
    assert log() == {("S1", "r3"): ("2025-06-20", 1), ("S2", "r1"): (None, 0)}  # its own row stays
