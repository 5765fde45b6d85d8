"""A run keeps the settings it started with, from its first step to its last.

Why: a run launched from the UI, by the schedule or by a sensor executes each step in a process of its own, which
loads the code location again and so reads the settings file as it is when that step starts. An edit in the
middle of a run would mix two settings in one cycle: models trained for one horizon scored for another, a gate
judging with a rule the training did not know. So the first step of a run records a digest of its settings as a
run tag (and the settings themselves, secrets masked, in the instance's key-value store); every later step
compares its own and stops before doing anything when they differ, naming the fields that changed.

A re-execution of some steps of a run (from failure, or a selection of its steps) continues the run it re-executes,
whose other steps' outputs were made with that run's settings: it is held to them too. ``mm-assets cycle`` runs
all the steps of each job in one process, which read the file once: it launches the runs with their tag.
"""

from __future__ import annotations

import hashlib
import json
import weakref

import dagster as dg

from mm_assets.settings import Settings
from mm_assets.settings_fields import changed_fields, settings_fields

SETTINGS_TAG = "mm_assets/settings"
_STORED = "mm_assets/settings/"  # key prefix in the instance's key-value store: + digest -> the settings' fields
SHOWN_CHANGES = 6
_HELD: dict[str, str] = {}  # run id -> the digest it is held to, as this process learnt it
_STORED_HERE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # instance -> digests stored by this process


def settings_digest(settings: Settings) -> str:
    """A short digest of every setting (what a run is held to)."""
    whole = json.dumps(settings.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(whole.encode()).hexdigest()[:16]


def settings_tags(settings: Settings) -> dict[str, str]:
    """The run tag of these settings: a run launched with it in one process (``mm-assets cycle``) is held to them
    from the start, and its steps need not record them."""
    return {SETTINGS_TAG: settings_digest(settings)}


def held_digest(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str | None:
    """The digest this run is held to: its own tag, else (a re-execution of some of its steps) its root run's."""
    fresh = instance.get_run_by_id(run.run_id) or run  # tags a step of this run recorded after the run was loaded
    if SETTINGS_TAG in fresh.tags:
        return fresh.tags[SETTINGS_TAG]
    if run.root_run_id and run.step_keys_to_execute:
        root = instance.get_run_by_id(run.root_run_id)
        if root is not None:
            return root.tags.get(SETTINGS_TAG)
    return None


def hold_settings(context, settings: Settings) -> None:
    """Records this run's settings at its first step; at any later one, raises ``dg.Failure`` (before the step
    does anything) when the settings this process read differ from those the run started with.

    Cheap: a run launched with its tag (``settings_tags``: ``mm-assets cycle``) or whose tag this process recorded
    asks nothing; a step in a process of its own asks once whether the run is tagged with its settings; only a
    first step writes (the tag), and a process stores the settings of a digest once."""
    instance, run = context.instance, context.run
    digest = settings_digest(settings)
    held = _HELD.get(run.run_id) or run.tags.get(SETTINGS_TAG)
    if held is None and instance.get_run_ids(dg.RunsFilter(run_ids=[run.run_id], tags={SETTINGS_TAG: digest})):
        held = digest  # an earlier step of the run recorded these settings (the usual case: one cheap query)
    if held is None:  # the first step, or settings changed since it (its tag names them), or a re-execution
        held = held_digest(instance, run)
    if held is None:
        instance.add_run_tags(run.run_id, {SETTINGS_TAG: digest})
        held = digest
    _HELD[run.run_id] = held
    if held == digest:
        stored_here = _STORED_HERE.setdefault(instance, set())
        if digest not in stored_here:  # once per instance, process and settings: a cycle's runs share them
            instance.run_storage.set_cursor_values({_STORED + digest: json.dumps(settings_fields(settings))})
            stored_here.add(digest)
        return
    stored = instance.run_storage.get_cursor_values({_STORED + held}).get(_STORED + held)
    changes = changed_fields(json.loads(stored), settings_fields(settings)) if stored else []
    named = "; ".join(changes[:SHOWN_CHANGES]) + (f"; and {len(changes) - SHOWN_CHANGES} more"
                                                    if len(changes) > SHOWN_CHANGES else "")
    raise dg.Failure(description=(
        f"the settings changed since this run started (settings {held}, now {digest}"
        + (f": {named}" if named else "") + "). The run's earlier steps used the settings it started with, and "
        "finishing it with others would mix the two in one cycle, so this step stopped before doing anything. "
        "Restore the settings file (and any MM_ASSETS__* variable) to re-execute this run, or launch a new run "
        "(Materialize, or the next schedule tick) to use the new settings."))
