"""Model registries: the training registry (every version) and, later, the production registry."""

from mm_assets.registry.model_registry import ModelRegistry

__all__ = ["ModelRegistry"]
