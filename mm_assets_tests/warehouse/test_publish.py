"""Registry rows shaped into warehouse rows: ids unpacked from their JSON tags, extra metrics from theirs."""

import json

import pandas as pd

from mm_assets.warehouse.publish import decisions_frame, decisions_to_publish, metrics_frame
from mm_assets.warehouse.warehouse import LATEST_ONLY_COLUMNS, METRIC_COLUMNS


def test_model_metrics_rows_carry_the_ids_and_the_extra_metrics_of_each_model():
    latest = pd.DataFrame({
        "series_key": ["S1|A", "S2|B"], "ids": [json.dumps({"store": "S1", "item": "A"}),
                                               json.dumps({"store": "S2", "item": "B"})],
        "metrics": [json.dumps({"smape": 0.2, "mape": 0.3}), ""], "run_id": ["r1", "r2"], "wape": [0.25, 0.4]})
    out = metrics_frame(latest, ["store", "item"])
    assert out[["store", "item"]].values.tolist() == [["S1", "A"], ["S2", "B"]]
    assert out["mape"].iloc[0] == 0.3 and pd.isna(out["mape"].iloc[1]) and out["rmse"].isna().all()
    assert out["training_run_id"].tolist() == ["r1", "r2"] and "run_id" not in out.columns
    empty = metrics_frame(latest.iloc[0:0], ["store", "item"])
    assert list(empty.columns) == ["store", "item", *METRIC_COLUMNS, *LATEST_ONLY_COLUMNS] and not len(empty)


def test_a_training_that_failed_after_the_model_was_made_is_named_on_its_row():
    """A series whose newest training failed keeps its older model; its row must not read as today's."""
    latest = pd.DataFrame({
        "series_key": ["S1|A", "S1|B", "S1|C"],
        "ids": [json.dumps({"store": "S1", "item": i}) for i in "ABC"], "metrics": ["", "", ""],
        "run_id": ["r1", "r2", "r2"], "trained_at": pd.to_datetime(["2025-05-01", "2025-05-08", "2025-05-08"])})
    failures = pd.DataFrame({
        "series_key": ["S1|A", "S1|B"], "failed_at": pd.to_datetime(["2025-05-08", "2025-05-01"]),
        "error_type": ["LinAlgError", "ValueError"], "error_message": ["singular matrix", "old"],
        "run_id": ["r2", "r1"]})
    out = metrics_frame(latest, ["store", "item"], failures).set_index("item")
    assert out.loc["A", "training_failed_at"] == pd.Timestamp("2025-05-08")
    assert out.loc["A", "training_error"] == "LinAlgError: singular matrix"
    assert out.loc[["B", "C"], "training_failed_at"].isna().all()  # B failed before its newer model was made
    assert out.loc[["B", "C"], "training_error"].isna().all()


def test_decision_rows_name_the_gate_run_and_carry_the_ids():
    decisions = pd.DataFrame({"series_key": ["S1|A"], "ids": [json.dumps({"store": "S1", "item": "A"})],
                              "decision": ["promoted"], "run_id": ["g1"]})
    out = decisions_frame(decisions, ["store", "item"])
    assert out.loc[0, ["store", "item", "decision", "gate_run_id"]].tolist() == ["S1", "A", "promoted", "g1"]
    assert decisions_frame(decisions.iloc[0:0], ["store", "item"]).empty


def test_a_gate_run_whose_publish_never_ran_reaches_the_warehouse_with_the_next_one(tmp_path):
    """gate-1 published; gate-2's run was stopped before its publish; gate-3's publish carries gate-2's decisions
    too, not only its own (the newest)."""
    from mm_assets.registry.production import ProductionRegistry
    from mm_assets.warehouse.warehouse import Warehouse

    production = ProductionRegistry(f"sqlite:///{tmp_path}/production.db", writable=True)
    wh = Warehouse(f"sqlite:///{tmp_path}/warehouse.db", ["store", "item"])
    none = pd.DataFrame(columns=["store", "item", "origin", "ds", "yhat", "model_type", "model_version",
                                 "model_source"])

    def gate(run: str, items: str) -> None:
        production.apply(pd.DataFrame(), pd.DataFrame([
            {"series_key": f"S1/{i}", "partition_key": "S1", "ids": json.dumps({"store": "S1", "item": i}),
             "decision": "rejected", "reason": run, "challenger_version": 1, "challenger_model_type": "linear",
             "challenger_accuracy": 0.5, "challenger_mase": 1.2, "challenger_wape": 0.5, "champion_version": None,
             "champion_wape": None} for i in items]), run)

    def publish() -> pd.DataFrame:
        rows = decisions_to_publish(production, wh, ["S1"], ["store", "item"])
        wh.publish_partition("S1", "pub", none, decisions=rows)
        return rows

    gate("gate-1", "AB")
    assert set(publish()["gate_run_id"]) == {"gate-1"}
    gate("gate-2", "A")  # stopped before its publish
    gate("gate-3", "B")
    rows = publish()
    assert sorted(zip(rows["gate_run_id"], rows["item"])) == [("gate-2", "A"), ("gate-3", "B")]
    stored = wh.read_table("promotion_decisions")
    assert sorted(zip(stored["gate_run_id"], stored["item"])) == [
        ("gate-1", "A"), ("gate-1", "B"), ("gate-2", "A"), ("gate-3", "B")]
    assert set(publish()["gate_run_id"]) == {"gate-3"}  # once published, only the newest again
    assert decisions_to_publish(production, wh, ["S2"], ["store", "item"]).empty
