"""What an ingest run tells the operator: its log lines and the metadata of its materialization, from the
``IngestResult`` of ``ingest.periods.ingest_periods``.

Why apart from the asset: the asset only wires the source, the lake and Dagster's partitions together; what the
run found (periods rewritten, late sales, damaged files, held-back series) is worded here, in plain Python.
"""

from __future__ import annotations

from datetime import datetime

from mm_assets.ingest.held import first_of_each_kind, held_back_line, held_back_table, held_kinds, kinds_line
from mm_assets.ingest.periods import IngestResult
from mm_assets.reporting.markdown import LakePath, Markdown

WARNING, INFO = "warning", "info"


def ingest_log(result: IngestResult) -> list[tuple[str, str]]:
    """(level, line) for each thing the run found beside its rows: periods rewritten with changed rows, periods that
    got late sales, damaged period files written again, periods written with new columns, series held back."""
    lines = []
    if result.rewritten:
        lines.append((WARNING,
            f"{len(result.rewritten)} periods already ingested were rewritten, their rows changed in the source "
            f"(e.g. {', '.join(result.rewritten[:5])})"
            + (f", {len(result.resized)} of them with rows removed, or added beside changed values (a store or "
               "series gone from the source, or a reload?)" if result.resized else "")
            + ": the models retrain on the new rows, and forecast_accuracy judges the forecasts of those periods "
            "again (within its window)"))
    if result.late_sales:
        lines.append((INFO,
            f"{len(result.late_sales)} periods already ingested got sales they lacked, no stored one changed "
            f"(e.g. {', '.join(result.late_sales[:5])}: a store that reported late, one new to the source with "
            "its history, or a series held back for bad rows whose rows were mended; no corrections): "
            "forecast_accuracy judges their forecasts with them"))
    if result.rebuilt:
        lines.append((WARNING,
            f"{len(result.rebuilt)} period files in the lake could not be read (damaged: cut short, or not "
            f"Parquet) and were written again from the source (e.g. {', '.join(result.rebuilt[:5])})"))
    if result.reshaped:
        lines.append((INFO,
            f"{len(result.reshaped)} periods already ingested were written again with the columns now configured "
            f"(e.g. {', '.join(result.reshaped[:5])}; their actuals did not change, so they are no corrections): "
            "the models retrain with the new columns"))
    if result.held:
        lines.append((WARNING, held_back_line(result.held)))
    if result.spellings:
        lines.append((WARNING, spellings_line(result.spellings)))
    if result.merged:
        lines.append((INFO, result.merged))
    return lines


def spellings_line(spellings: list[str]) -> str:
    """The warning of id values written two ways in the rows read (``IngestResult.spellings``)."""
    return (f"id values written two ways in the rows read, each spelling a series of its own: "
            f"{'; '.join(spellings)}")


def ingest_metadata(result: IngestResult, periods: int, new_partitions: int, store_partitions: int,
                    partitions_note: str | None, start: datetime, end: datetime, lake_folder: str) -> dict:
    """The run's figures as plain values (``assets.metadata.dagster_metadata`` makes them Dagster's): what it
    held back and why, its rows and periods, what it rewrote, the store partitions, the window it read."""
    held = result.held
    return {
        "series_held_back": len(held),
        **({"held_back": Markdown(held_back_table(held)),
            "held_back_series": [h["series"] for h in held[:20]],
            "held_back_first_problem": first_of_each_kind(held),
            "held_back_by_problem": kinds_line(held_kinds(held))} if held else {}),
        "batch_rows": result.rows,
        "batch_periods": periods,
        "periods_rewritten": len(result.rewritten),
        "periods_resized": len(result.resized),  # of the rewritten: rows added or removed
        "periods_late_sales": len(result.late_sales),  # sales added beside unchanged ones: no corrections
        "periods_rebuilt": len(result.rebuilt),
        "periods_reshaped": len(result.reshaped),
        "rewritten_periods": result.rewritten[:100],
        **({"id_spellings": spellings_line(result.spellings)} if result.spellings else {}),
        **({"duplicate_rows_merged": result.merged} if result.merged else {}),
        "plan_rows": result.plan_rows,
        "new_partitions": new_partitions,
        "store_partitions": store_partitions,
        **({"partitions_note": partitions_note} if partitions_note else {}),
        "read_window": f"{start:%Y-%m-%d} .. {end:%Y-%m-%d} (exclusive)",
        "lake_folder": LakePath(lake_folder),
    }
