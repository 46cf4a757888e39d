"""Published weight layouts: how a reference framework's state dict maps onto a zoo model.

Each model family registers the layouts its published checkpoints come in (``WEIGHT_LAYOUTS``):
X3D has ``slowfast`` and ``pytorchvideo`` (``x3d_weights.py``), the Efficient-3DCNNs family
``efficient3dcnns``. ``src/tools/convert_checkpoint.py`` reads the torch file and hands
``{key: ndarray}`` to the layout, so the tool never knows a model's parameter names.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import UserError
from ..registry import Registry

BN_NAMES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}

WEIGHT_LAYOUTS: Registry = Registry("weight_layouts")


class WeightLayout:
    """One published state-dict layout of one model family."""

    name: str = ""
    model_prefixes: Tuple[str, ...] = ()   # model types it applies to (``x3d`` -> x3d_xs, x3d_s ...)
    describe: str = ""                      # what its keys look like, for error messages

    def applies_to(self, model_type: str) -> bool:
        return any(model_type.startswith(p) for p in self.model_prefixes)

    def detect(self, keys: Sequence[str]) -> bool:
        """Whether ``keys`` (``module.`` already stripped) look like this layout."""
        raise NotImplementedError

    def build_kwargs(self, verify: bool) -> Dict[str, Any]:
        """Extra model kwargs for the conversion build (e.g. a logit head when verifying)."""
        return {}

    def convert(self, state: Mapping[str, np.ndarray], net: Any, *, where: str) -> Tuple[Dict[str, np.ndarray],
                                                                                      Dict[str, Any]]:
        """``(params under our names, info)``; raises a one-line :class:`UserError` on any misfit."""
        raise NotImplementedError

    def check_extra(self, extra: Mapping[str, Any], net: Any, *, where: str) -> None:
        """Check the file's other entries (training config, architecture name) against ``net``."""

    def reference_logits(self, net: Any, model_cfg: Any, state: Mapping[str, np.ndarray],
                         clip: np.ndarray) -> np.ndarray:
        """Logits of the reference implementation holding ``state`` on ``clip`` (``--verify``)."""
        raise UserError(f"--verify: layout '{self.name}' has no reference implementation available at run "
                        f"time (its parity is checked by the test suite)")


def register_layout(layout: WeightLayout) -> WeightLayout:
    WEIGHT_LAYOUTS.register(layout.name, layout)
    return layout


def strip_prefix(state: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Drop a ``module.`` prefix (checkpoints saved from DataParallel/DDP wrappers)."""
    keys = list(state)
    if keys and all(k.startswith("module.") for k in keys):
        return OrderedDict((k[len("module."):], v) for k, v in state.items())
    return OrderedDict(state)


def resolve_layout(keys: Sequence[str], model_type: str, name: Optional[str] = None,
                   where: str = "checkpoint") -> WeightLayout:
    """The layout to convert ``keys`` for ``model_type``: ``name`` if given, else detected."""
    keys = list(strip_prefix({k: None for k in keys}))
    usable = [WEIGHT_LAYOUTS.get(n) for n in WEIGHT_LAYOUTS if WEIGHT_LAYOUTS.get(n).applies_to(model_type)]
    if not usable:
        raise UserError(f"model '{model_type}': no published weight layout is registered for it")
    if name is not None:
        layout = WEIGHT_LAYOUTS.get(name)
        if layout not in usable:
            raise UserError(f"--from {name}: that layout is for other models; for '{model_type}' use one of: "
                            f"{', '.join(l.name for l in usable)}")
        others = [l for l in usable if l is not layout and l.detect(keys)]
        if others and not layout.detect(keys):
            raise UserError(f"{where}: --from {name}, but its keys are {others[0].name}'s ({others[0].describe})")
        return layout
    found = [l for l in usable if l.detect(keys)]
    if len(found) != 1:
        expected = "; ".join(f"{l.name}: {l.describe}" for l in usable)
        first = ", ".join(keys[:3]) or "none"
        raise UserError(f"{where}: cannot tell the layout for '{model_type}' (expected {expected}); "
                        f"first keys: {first}")
    return found[0]


__all__ = ["WEIGHT_LAYOUTS", "WeightLayout", "register_layout", "resolve_layout", "strip_prefix", "BN_NAMES"]
