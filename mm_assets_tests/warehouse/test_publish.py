"""Registry rows shaped into warehouse rows: ids unpacked from their JSON tags, extra metrics from theirs."""

import json

import pandas as pd

from mm_assets.warehouse.publish import decisions_frame, metrics_frame
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
