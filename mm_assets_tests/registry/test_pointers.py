"""The registries' current-row pointers: the same answers as the aggregates over the whole log, after many
days of writes, and never behind when rows were written without them (older code, a rollback)."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import sqlalchemy as sa

from mm_assets.registry import ModelRegistry, pointers
from mm_assets.registry.model_registry import log_marks as model_log_marks
from mm_assets.registry.model_registry import model_latest, model_versions
from mm_assets.registry.production import (
    ProductionRegistry,
    champions,
    champions_current,
    decisions,
    gate_runs,
    newest_gate_run,
)
from mm_assets.registry.production import log_marks as production_log_marks
from mm_assets_tests.registry.test_model_registry import model_rows

SERIES = [(f"S{s}", f"I{i}") for s in range(3) for i in range(4)]


def _latest_from_log(url: str, partitions: list[str] | None = None) -> pd.DataFrame:
    """The newest version of every series, read from the whole log."""
    log = pd.read_sql(sa.select(model_versions), sa.create_engine(url))
    if partitions is not None:
        log = log[log["partition_key"].isin(partitions)]
    return log.loc[log.groupby("series_key")["version"].idxmax()].sort_values("series_key", ignore_index=True)


def test_latest_follows_the_pointers_and_equals_the_log(tmp_path):
    url = f"sqlite:///{tmp_path}/registry.db"
    registry = ModelRegistry(url)
    rng = np.random.default_rng(0)
    for day in range(6):  # each day trains a different subset, some series skip days
        keys = [SERIES[i] for i in sorted(rng.choice(len(SERIES), size=7, replace=False))]
        registry.register(model_rows(keys, accuracy=0.5 + day / 20), run_id=f"day{day}")
    with registry.engine.connect() as conn:  # the reads below go through the pointers
        assert pointers.is_current(conn, model_log_marks, model_versions, model_latest)
    for partitions in (None, ["S0", "S2"]):
        got = registry.latest(partitions).drop(columns="id")
        want = _latest_from_log(url, partitions).drop(columns="id")
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_dtype=False)
    pointed = pd.read_sql(sa.select(model_latest), registry.engine).sort_values("series_key", ignore_index=True)
    assert len(pointed) == len(_latest_from_log(url))  # one pointer per series ever trained


def test_versions_written_without_the_pointers_are_never_missed(tmp_path):
    """Older code (a rollback) appends versions and knows nothing of the pointers: a read-only handle reads the
    log instead, a writable one takes them in when it opens, and the next version numbers follow them."""
    path = tmp_path / "registry.db"
    url = f"sqlite:///{path}"
    ModelRegistry(url).register(model_rows([("S1", "I1"), ("S1", "I2")]), run_id="new-code")
    con = sqlite3.connect(path)  # as the older code wrote: the log only
    con.execute("INSERT INTO model_versions (series_key, partition_key, ids, model_type, version, status, "
                "metrics, artifact_uri, artifact_offset, artifact_size, trained_at, run_id) VALUES "
                "('S1/I1', 'S1', ?, 'linear', 2, 'trained', '{}', '/old.bin', 0, 1, '2025-06-01', 'old-code')",
                (json.dumps({"store": "S1", "item": "I1"}),))
    con.commit()
    con.close()
    reader = ModelRegistry(url, read_only=True)
    assert dict(zip(reader.latest()["series_key"], reader.latest()["version"])) == {"S1/I1": 2, "S1/I2": 1}
    writer = ModelRegistry(url)  # opening catches the pointers up
    assert dict(pd.read_sql(sa.select(model_latest), writer.engine)[["series_key", "version"]].values) == {
        "S1/I1": 2, "S1/I2": 1}
    again = writer.register(model_rows([("S1", "I1")]), run_id="new-code-2")
    assert list(again["version"]) == [3]
    assert dict(zip(reader.latest()["series_key"], reader.latest()["version"])) == {"S1/I1": 3, "S1/I2": 1}


def _champion(key: str, version: int) -> dict:
    store = key.split("/")[0]
    return {"series_key": key, "partition_key": store, "ids": "{}", "model_type": "linear", "version": version,
            "accuracy": 0.9, "wape": 0.1, "mase": 0.5, "metrics": "{}", "data_end": pd.Timestamp("2025-06-30"),
            "artifact_uri": "/p.bin", "artifact_offset": 0, "artifact_size": 5, "source_artifact_uri": "/t.bin"}


def _decision(key: str, decision: str) -> dict:
    return {"series_key": key, "partition_key": key.split("/")[0], "ids": "{}", "decision": decision, "reason": "r",
            "challenger_version": 1, "challenger_model_type": "linear", "challenger_accuracy": 0.9,
            "challenger_mase": 0.5, "challenger_wape": 0.1, "champion_version": None, "champion_wape": None}


def test_champions_and_the_newest_gate_run_follow_the_pointers(tmp_path):
    url = f"sqlite:///{tmp_path}/production.db"
    writer = ProductionRegistry(url, writable=True)
    reader = ProductionRegistry(url)
    keys = [f"{s}/{i}" for s, i in SERIES]
    rng = np.random.default_rng(1)
    for day in range(5):
        promoted = [k for k in keys if rng.random() < 0.5]
        gated = [k for k in keys if k.startswith("S0") or day % 2 == 0]  # S1 and S2 are gated every other day
        writer.apply(pd.DataFrame([_champion(k, day + 1) for k in promoted]),
                     pd.DataFrame([_decision(k, "promoted" if k in promoted else "rejected") for k in gated]),
                     f"gate-{day}")
    with writer.engine.connect() as conn:  # the reads below go through the pointers
        assert pointers.is_current(conn, production_log_marks, champions, champions_current)
        assert pointers.is_current(conn, production_log_marks, decisions, gate_runs)
    log = pd.read_sql(sa.select(champions), writer.engine)
    want = log.loc[log.groupby("series_key")["id"].idxmax()].sort_values("series_key", ignore_index=True)
    pd.testing.assert_frame_equal(reader.current(), want, check_dtype=False)
    assert len(pd.read_sql(sa.select(champions_current), writer.engine)) == len(want)
    every = reader.decisions(["S0", "S1", "S2"])
    got = reader.newest_decisions(["S0", "S1", "S2"])
    pd.testing.assert_frame_equal(got, newest_gate_run(every).sort_values("id", ignore_index=True), check_dtype=False)
    assert dict(zip(got["partition_key"], got["run_id"])) == {"S0": "gate-4", "S1": "gate-4", "S2": "gate-4"}
    writer.apply(pd.DataFrame(), pd.DataFrame([_decision("S0/I0", "rejected")]), "gate-5")  # S0 alone
    runs = dict(pd.read_sql(sa.select(gate_runs), writer.engine)[["partition_key", "run_id"]].values)
    assert runs == {"S0": "gate-5", "S1": "gate-4", "S2": "gate-4"}
    got = reader.newest_decisions(["S0", "S1"])
    assert list(got.loc[got["partition_key"] == "S0", "run_id"]) == ["gate-5"]
    assert len(got[got["partition_key"] == "S1"]) == 4  # its newest run's four decisions


def test_champions_written_without_the_pointers_are_never_missed(tmp_path):
    path = tmp_path / "production.db"
    url = f"sqlite:///{path}"
    ProductionRegistry(url, writable=True).apply(pd.DataFrame([_champion("S1/I1", 1)]),
                                                 pd.DataFrame([_decision("S1/I1", "promoted")]), "gate-1")
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # older code: the logs only
        conn.execute(sa.text("INSERT INTO champions (series_key, partition_key, ids, model_type, version, "
                             "artifact_uri, artifact_offset, artifact_size, promoted_at, run_id) VALUES "
                             "('S1/I1', 'S1', '{}', 'linear', 7, '/old.bin', 0, 1, '2025-06-01', 'gate-old')"))
        conn.execute(sa.text("INSERT INTO promotion_decisions (series_key, partition_key, ids, decision, reason, "
                             "decided_at, run_id) VALUES ('S1/I1', 'S1', '{}', 'promoted', 'r', '2025-06-01', "
                             "'gate-old')"))
    engine.dispose()
    reader = ProductionRegistry(url)
    assert list(reader.current()["version"]) == [7]
    assert list(reader.newest_decisions(["S1"])["run_id"]) == ["gate-old"]
    ProductionRegistry(url, writable=True)  # opening catches the pointers up
    assert list(reader.current()["version"]) == [7]
    runs = pd.read_sql(sa.select(gate_runs), reader.engine)
    assert list(runs["run_id"]) == ["gate-old"]


def test_a_daily_read_asks_the_catalogue_only_until_the_pointers_are_seen(tmp_path):
    """Pointer tables are never dropped: once a handle has seen them, its reads do not list the database's
    tables again; a database where they are still missing is asked again on the next read."""
    url = f"sqlite:///{tmp_path}/registry.db"
    older = sa.create_engine(url)
    model_versions.metadata.create_all(older, tables=[model_versions])  # a registry from before the pointers
    engine = sa.create_engine(url)
    catalogue: list[str] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _count(conn, cursor, statement, parameters, context, executemany):
        if "sqlite_master" in statement:
            catalogue.append(statement)

    def read() -> bool:
        with engine.connect() as conn:
            return pointers.is_current(conn, model_log_marks, model_versions, model_latest)

    assert not read() and catalogue  # no pointer tables yet: the log is read
    asked = len(catalogue)
    assert not read() and len(catalogue) > asked  # still missing: asked again, never remembered as absent
    ModelRegistry(url).register(model_rows([("S1", "I1")]), run_id="writer")  # creates and fills them
    assert read()
    asked = len(catalogue)
    assert read() and read() and len(catalogue) == asked
