"""Text the Dagster UI shows as Markdown, named as such without importing Dagster.

Why: the tables and plots an operator reads in the UI are made by plain Python (this package); only the asset
that reports them turns a ``Markdown`` value into Dagster's Markdown metadata, and any other text stays text.
"""


class Markdown(str):
    """A metadata value to show as Markdown (a table, an embedded plot)."""
