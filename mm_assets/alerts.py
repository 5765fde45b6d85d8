"""Run-failure and held-series alerts: a JSON POST to a webhook (Teams, Slack or any HTTP endpoint). No Dagster here.

Why plain HTTP: every chat and incident tool accepts an incoming webhook, and it needs no extra package.
The URL may carry a token, so it is never logged, only its host.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request


def webhook_host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or "<invalid url>"


def post_alert(url: str, payload: dict, timeout_s: float = 10.0) -> int:
    """POST ``payload`` as JSON; returns the HTTP status. Raises on network errors."""
    body = json.dumps(payload, default=str).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", "User-Agent": "mm-assets"}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return response.status


def held_payload(job_name: str, run_id: str, count: int, series: list[str], problem: str) -> dict:
    """An ingest run that succeeded but held series back for bad rows: the run is green, the data are not."""
    named = ", ".join(series[:10]) + (" ..." if count > 10 else "")
    return {
        "text": f"mm-assets: {count} series held back for bad rows by {job_name} ({run_id[:8]}): {named}. "
                f"{problem[:500]}",
        "job": job_name,
        "run_id": run_id,
        "series_held_back": count,
        "series": series[:100],
    }


def failure_payload(job_name: str, run_id: str, message: str, failed_steps: list[str]) -> dict:
    return {
        "text": f"mm-assets run failed: {job_name} ({run_id[:8]}): {message[:500]}",
        "job": job_name,
        "run_id": run_id,
        "failed_steps": failed_steps,
    }
