"""The one place grokinterp imports TransformerLens. A TransformerLens API change touches this file only.

transformer_lens 4.x: ``HookedTransformer`` is gone; small models built from a config are
``TransformerBridge.boot_native(TransformerBridgeConfig(...))``, which keeps the HookedTransformer
surface (``W_E``, ``blocks[0].mlp.W_in``, ``run_with_cache``, legacy hook names).
``HookedRootModule`` must come from the package top level.
"""

from __future__ import annotations

import warnings

from tqdm import TqdmWarning

# TransformerLens imports tqdm.auto (through huggingface_hub), which in Jupyter without ipywidgets
# warns once and falls back to the text bar; the fallback is fine (ipywidgets comes with the
# ``notebook`` extra), the warning is noise
with warnings.catch_warnings():
    warnings.simplefilter("ignore", TqdmWarning)
    from transformer_lens import ActivationCache, HookedRootModule, TransformerBridge, TransformerBridgeConfig
    from transformer_lens.hook_points import HookPoint
    from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint

__all__ = [
    "ActivationCache",
    "HookPoint",
    "HookedRootModule",
    "TransformerBridge",
    "TransformerBridgeConfig",
    "add_permanent_pattern_hook",
    "boot_native",
    "convert_tl_checkpoint",
    "is_bridge",
    "transformer_lens_version",
]


def boot_native(config: TransformerBridgeConfig) -> TransformerBridge:
    return TransformerBridge.boot_native(config)


def add_permanent_pattern_hook(model: TransformerBridge, layer: int, fn) -> None:
    """Register ``fn(pattern, hook)`` on ``blocks.{layer}.attn.hook_pattern`` as a permanent hook
    (it survives ``reset_hooks()`` and runs before hooks added later, e.g. ``run_with_cache``'s).
    The bridge's native attention applies ``hook_pattern`` before multiplying by the values."""
    model.blocks[layer].attn.hook_pattern.add_hook(fn, is_permanent=True)


def is_bridge(model: object) -> bool:
    return isinstance(model, TransformerBridge)


def transformer_lens_version() -> str:
    from importlib.metadata import version

    return version("transformer_lens")
