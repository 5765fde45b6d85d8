"""The check of ``trained_models``: no series of a store failed to train (the failed ones are retried)."""

from __future__ import annotations

from mm_assets.checks.verdict import Verdict


def no_failed_series(keys: list[str], failures, done) -> dict[str, Verdict]:
    """Per store: none of its series failed (``failures`` and ``done``: rows with ``partition_key`` and
    ``series_key``; the failed ones are retried on the next run)."""
    out = {}
    for key in keys:
        failed = failures.loc[failures["partition_key"] == key, "series_key"] if len(failures) else []
        series = (int((done["partition_key"] == key).sum()) if len(done) else 0) + len(failed)
        out[key] = Verdict(
            passed=len(failed) == 0,
            metadata={"failed": len(failed), "series": series, "failed_keys": ", ".join(list(failed)[:20])},
            description=f"{len(failed)} of {series} series of store {key} failed (recorded with their errors: "
            "mm-assets failures); they are retried on the next run.",
        )
    return out
