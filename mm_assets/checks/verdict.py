"""One store's result of one check, without Dagster: the assets turn it into a check evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Verdict:
    """One store's result of one check. ``metadata``: plain values (numbers, text, lists and dicts, shown as JSON)."""

    passed: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    description: str | None = None  # why it did not pass
    note: str | None = None  # what a pass means when it is not the plain one (nothing was judged yet)
    warn_only: bool = False  # a failure that is this store's to know of, not an error (the check's severity else)


def some_partitions(keys) -> str:
    """A few partition keys, and how many more: what a message names of a long list."""
    keys = [str(k) for k in keys]
    return ", ".join(keys[:5]) + (f" and {len(keys) - 5} more partitions" if len(keys) > 5 else "")
