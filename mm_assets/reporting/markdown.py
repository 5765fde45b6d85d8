"""Values the Dagster UI shows in a form of their own, named as such without importing Dagster.

Why: the tables and plots an operator reads in the UI are made by plain Python (this package); only the asset
that reports them turns a ``Markdown`` value into Dagster's Markdown metadata (and a ``LakePath`` into a path),
and any other text stays text.
"""


class Markdown(str):
    """A metadata value to show as Markdown (a table, an embedded plot)."""


class LakePath(str):
    """A metadata value that is where a file is (a local path or an ``abfs://`` URI), shown as a path."""
