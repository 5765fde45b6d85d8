"""Human-readable reports of a run: plots and tables for the Dagster UI (no Dagster here)."""
