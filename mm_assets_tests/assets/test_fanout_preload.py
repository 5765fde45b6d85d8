"""The runner's workers fork with Prophet imported only when the run's models may be Prophet's."""

from mm_assets.assets.fanout import slow_imports
from mm_assets.settings import Settings


def test_prophet_is_preloaded_only_for_prophet_runs():
    assert slow_imports(Settings.model_validate({"model": {"type": "prophet"}})) == ("prophet",)
    auto = {"model": {"type": "auto", "auto_candidates": ["linear", "prophet"]}}
    assert slow_imports(Settings.model_validate(auto)) == ("prophet",)
    assert slow_imports(Settings.model_validate({"model": {"type": "auto", "auto_candidates": ["linear"]}})) == ()
    assert slow_imports(Settings()) == ()
