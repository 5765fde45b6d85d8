"""The runner's workers fork with Prophet or LightGBM imported only when the run's models may need them."""

from mm_assets.assets.fanout import slow_imports
from mm_assets.settings import Settings


def test_slow_libraries_are_preloaded_only_for_the_runs_that_use_them():
    assert slow_imports(Settings.model_validate({"model": {"type": "prophet"}})) == ("prophet",)
    auto = {"model": {"type": "auto", "auto_candidates": ["linear", "prophet"]}}
    assert slow_imports(Settings.model_validate(auto)) == ("prophet",)
    assert slow_imports(Settings.model_validate({"model": {"type": "auto", "auto_candidates": ["linear"]}})) == ()
    assert slow_imports(Settings.model_validate({"model": {"type": "linear"}})) == ()
    assert slow_imports(Settings()) == ("lightgbm",)  # the default model
