"""Ingestion without Dagster: reading the source, validating rows, cutting per-partition series datasets."""
