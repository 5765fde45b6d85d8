"""What each asset check judges, in plain Python: per store partition a ``Verdict`` (passed, figures, why not).

The assets in ``mm_assets.assets`` turn verdicts into Dagster check evaluations (``assets.store_checks``); the
rules live here, where they run and are tested without Dagster.
"""
