"""Counted nouns for the lines an operator reads ("1 period", "2 periods"): a one-store or one-row source is
a case users meet (a first trial, a store just opened), and "1 periods" reads as a bug."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 period``, ``2 periods``, ``1,200 series`` (``plural`` where adding an s is wrong)."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
