"""The operator's path through the Dagster UI, in a real headless Chromium (Debian's, driven by Playwright).

Starts the Dagster webserver and daemon on loopback over an instance holding two finished demo cycles on tiny
data (the second after a new week of actuals arrived, so the first one's forecasts are judged) (one store, S03, too new for any model: all its series on the baseline), then: sees the lineage from
raw_sales to the warehouse, opens trained_models and its store partitions, makes one series worse on purpose and
launches a backfill of two store partitions from the UI, waits until it succeeds, opens one partition's metadata
(plots, and the series that got worse with both WAPEs), opens one store's realised accuracy, and sees the production_models check served_by_model
failed, and in its per-store view the one store S03 failed with its reason (a warning: its series are too new). Screenshots land in test-artifacts/browser/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from mm_assets.cycle import run_cycle
from mm_assets.definitions import build_definitions
from mm_assets.demo.generator import DemoSpec, write_source
from mm_assets.settings import load_settings
from mm_assets_tests.conftest import _free_port

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def _wait_http(url: str, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the Dagster webserver exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    pytest.fail(f"{url} did not answer within {timeout}s:\n{log.read_text()[-3000:]}")


def _wait_for_quiet_runs(instance, timeout: float, daemon_log: Path) -> None:
    """Until no run is queued or running (the sensors' chained runs included; they start within a few ticks)."""
    active = dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
                                     dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED])
    deadline, quiet_since = time.time() + timeout, None
    while time.time() < deadline:
        if instance.get_runs_count(filters=active):
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.time()
        elif time.time() - quiet_since > 45:  # longer than a sensor's interval: nothing more is coming
            return
        time.sleep(3)
    pytest.fail(f"runs still active after {timeout}s:\n{daemon_log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed: `apt-get install chromium` (make test does); never skipped")
    root = tmp_path_factory.mktemp("ui")
    home = root / "home"
    home.mkdir()
    shutil.copy(ROOT / "mm_assets" / "local_instance.yaml", home / "dagster.yaml")
    home_env = pytest.MonkeyPatch()  # the file's storages live in $DAGSTER_HOME, as make ui sets it
    home_env.setenv("DAGSTER_HOME", str(home))
    settings_file = root / "settings.yaml"
    settings_file.write_text(
        f'source: {{url: "sqlite:///{root}/source.db"}}\n'
        f'storage: {{lake: "{root}/lake", registry: "sqlite:///{root}/registry.db", '
        f'warehouse: "sqlite:///{root}/warehouse.db", production_registry: "sqlite:///{root}/production.db"}}\n'
        'horizon: 14\ningest: {start_date: "2026-02-01"}\n'
        'runner: {max_concurrency: 2, series_per_task: 5}\nschedule: {partitions_per_run: 2}\n'
    )
    settings = load_settings(settings_file, environ={})
    write_source(DemoSpec(stores=3, items=4, days=150, end_date=__import__("datetime").date(2026, 6, 28), seed=5),
                 url=settings.source.url)
    with sa.create_engine(settings.source.url).begin() as conn:  # S03 is new: too short for a model, all baseline
        conn.exec_driver_sql("DELETE FROM sales WHERE store = 'S03' AND date < '2026-06-18'")
    engine = sa.create_engine(settings.source.url)
    with engine.begin() as conn:  # the newest week arrives after a first cycle: its forecasts are then judged
        held = pd.read_sql(sa.text("SELECT * FROM sales WHERE date > '2026-06-21 23:59'"), conn)
        conn.exec_driver_sql("DELETE FROM sales WHERE date > '2026-06-21 23:59'")
    instance = dg.DagsterInstance.from_config(str(home))
    defs = build_definitions(settings)
    assert run_cycle(defs, instance, settings, log=lambda m: None).ok
    held.to_sql("sales", engine, if_exists="append", index=False)
    assert run_cycle(defs, instance, settings, log=lambda m: None).ok

    env = {**os.environ, "DAGSTER_HOME": str(home), "MM_ASSETS_SETTINGS": str(settings_file)}
    bin_dir = Path(sys.executable).parent
    port = _free_port()
    web_log, daemon_log = root / "webserver.log", root / "daemon.log"
    web = subprocess.Popen([str(bin_dir / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1",
                            "-p", str(port)], cwd=ROOT, env=env, stdout=web_log.open("w"), stderr=subprocess.STDOUT)
    daemon = subprocess.Popen([str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"], cwd=ROOT, env=env,
                              stdout=daemon_log.open("w"), stderr=subprocess.STDOUT)
    try:
        _wait_http(f"http://127.0.0.1:{port}/server_info", 180, web, web_log)
        yield f"http://127.0.0.1:{port}", instance, daemon_log, root
    finally:
        home_env.undo()
        for proc in (web, daemon):
            proc.terminate()
        for proc in (web, daemon):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_operator_journey_in_the_dagster_ui(dagster_ui):
    from playwright.sync_api import expect, sync_playwright

    base, instance, daemon_log, root = dagster_ui
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        page.set_default_timeout(60_000)
        # Dagster's one-time "Join the community" dialog may pop up on any page: dismiss it whenever it does
        page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda skip: skip.click())

        # 1. lineage from raw_sales to the warehouse
        page.goto(f"{base}/assets/forecast_predictions?view=lineage&lineageScope=upstream&lineageDepth=10")
        page.wait_for_load_state("networkidle")
        for asset in ("raw_sales", "series_datasets", "trained_models", "production_models", "batch_predictions"):
            expect(page.get_by_text(asset, exact=True).first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "1-asset-lineage.png"))

        # 2. trained_models and its store partitions
        page.goto(f"{base}/assets/trained_models?view=partitions")
        page.wait_for_load_state("networkidle")
        for store in ("S01", "S02", "S03"):
            expect(page.get_by_text(store, exact=True).first).to_be_visible()
        expect(page.get_by_text("Materialized (3)")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "2-trained-models-partitions.png"))

        # 3. make one series worse on purpose (its newest two weeks eight times higher), then launch a backfill
        # of two store partitions from the UI: the retrained model of that series is worse than its previous one
        dataset = root / "lake" / "datasets" / "S01.parquet"
        rows = pd.read_parquet(dataset)
        newest = rows.index[rows["item"] == "I001"][-14:]
        rows.loc[newest, "y"] = rows.loc[newest, "y"] * 8
        rows.to_parquet(dataset, index=False)
        before = {b.backfill_id for b in instance.get_backfills()}
        page.get_by_role("button", name="Materialize…").first.click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("Select a partition or create one").click()
        menu = page.get_by_text("Select all (3)").locator("xpath=ancestor::*[.//*[text()='S02']][1]")
        menu.get_by_text("S01", exact=True).first.click()
        menu.get_by_text("S02", exact=True).first.click()
        dialog.get_by_text("Launch runs to materialize trained_models").click()  # closes the dropdown
        expect(dialog.get_by_text("2 partitions", exact=True)).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "3-backfill-dialog.png"))
        dialog.get_by_role("button", name="Launch backfill").click()

        # 4. wait until the backfill succeeds
        deadline = time.time() + 300
        backfill = None
        while time.time() < deadline:
            new = [b for b in instance.get_backfills() if b.backfill_id not in before]
            backfill = new[0] if new else None
            if backfill is not None and backfill.status.value in ("COMPLETED_SUCCESS", "COMPLETED_FAILED",
                                                                  "FAILED", "CANCELED"):
                break
            time.sleep(3)
        assert backfill is not None, "the UI did not create a backfill"
        assert backfill.status.value == "COMPLETED_SUCCESS", (backfill.status, daemon_log.read_text()[-3000:])
        assert set(backfill.asset_backfill_data.target_subset.get_partitions_subset(
            dg.AssetKey("trained_models")).get_partition_keys()) == {"S01", "S02"}
        page.goto(f"{base}/runs/b/{backfill.backfill_id}")
        page.wait_for_load_state("networkidle")
        expect(page.get_by_text("Succeeded", exact=True).first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "4-completed-backfill.png"))

        # 5. the metadata of one partition: plots and tables
        page.goto(f"{base}/assets/trained_models?view=partitions&partition=S01")
        page.wait_for_load_state("networkidle")
        expect(page.get_by_text("median_accuracy").first).to_be_visible()
        expect(page.get_by_text("forecast_vs_actual").first).to_be_visible()
        expect(page.get_by_text("accuracy_distribution").first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "5-partition-metadata.png"), full_page=True)
        row = page.locator("tr", has=page.get_by_text("forecast_vs_actual", exact=True))
        row.get_by_text("[Show Markdown]").first.click()
        plot = page.locator("img[alt^='typical series']").first
        expect(plot).to_be_visible()
        assert plot.evaluate("img => img.naturalWidth") > 100  # the PNG decoded and rendered
        expect(page.locator("img[alt^='worst series']").first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "6-forecast-vs-actual-plot.png"))
        page.get_by_role("dialog").get_by_role("button", name="Close").click()
        expect(page.get_by_role("dialog")).to_have_count(0)

        # 7. what got worse, shown inline in the same partition view: the degraded series, both WAPEs, the change
        worse = page.locator("tr", has=page.get_by_text("S01/I001", exact=True)).first
        worse.scroll_into_view_if_needed()
        # against the backfill's v3: the second cycle's v2, the version that served until the correction (same data
        # end, other holdout actuals: not a rerun, which would compare with the model of the previous data instead)
        expect(worse).to_contain_text("v2 lightgbm")
        expect(worse).to_contain_text("corrected actuals")
        expect(worse).to_contain_text("pts")
        page.screenshot(path=str(ARTIFACTS / "7-worse-than-previous.png"))

        # 8. realised accuracy, one click from the catalog: the published forecasts judged against the actuals
        # that arrived since, against the baseline's of the same days, and the series furthest behind it
        page.goto(f"{base}/assets/forecast_accuracy?view=partitions&partition=S01")
        page.wait_for_load_state("networkidle")
        for field in ("realized_wape", "realized_mase_vs_baseline", "worst_vs_baseline", "points"):
            expect(page.get_by_text(field, exact=True).first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "8-realised-accuracy.png"), full_page=True)

        # 9. the store served entirely by its baseline fails its own partition of the served_by_model check.
        # The backfill above chains the gate for S01 and S02 (sensors): wait until those runs are done
        _wait_for_quiet_runs(instance, 300, daemon_log)
        page.goto(f"{base}/assets/production_models?view=checks")
        page.wait_for_load_state("networkidle")
        page.get_by_text("served_by_model").first.click()
        page.wait_for_load_state("networkidle")
        expect(page.get_by_text("Failed").first).to_be_visible(timeout=60_000)  # the check as a whole is red
        page.get_by_text("Partitions", exact=True).last.click()  # the check's own tab, one status per store
        # the UI shows what the instance holds: the newest evaluation of each store (S03 red; the retrained
        # stores as their gate judged them on this tiny data)
        newest: dict = {}
        for record in instance.event_log_storage.get_asset_check_execution_history(
                dg.AssetCheckKey(dg.AssetKey("production_models"), "served_by_model"), limit=50):
            evaluation = record.event.asset_check_evaluation
            if evaluation is not None:
                newest.setdefault(evaluation.partition, evaluation.passed)
        assert set(newest) == {"S01", "S02", "S03"} and newest["S03"] is False
        failed = sum(not passed for passed in newest.values())
        expect(page.get_by_text(f"Failed ({failed})", exact=True)).to_be_visible()
        expect(page.get_by_text(f"Passed ({3 - failed})", exact=True)).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "9-served-by-model-per-store.png"), full_page=True)
        page.locator("text=/^S03$/ >> visible=true").last.click()  # the store in the list (not a hidden measure)
        expect(page.get_by_text("4 of 4 series of store S03", exact=False).first).to_be_visible(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "10-served-by-model-red-store.png"), full_page=True)
        browser.close()
    for name in ("1-asset-lineage.png", "4-completed-backfill.png", "5-partition-metadata.png",
                 "6-forecast-vs-actual-plot.png", "7-worse-than-previous.png", "8-realised-accuracy.png", "9-served-by-model-per-store.png",
                 "10-served-by-model-red-store.png"):
        assert (ARTIFACTS / name).stat().st_size > 10_000
