"""MindSpore context set-up shared by every entry point: device choice, mode, seed."""
from __future__ import annotations

import random
from typing import Any, Mapping, Optional

import numpy as np
import mindspore as ms

DEVICES = ("CPU", "GPU", "Ascend")


def best_device() -> str:
    """GPU if MindSpore sees one, then Ascend, else CPU."""
    try:
        from mindspore import device_context
        if device_context.gpu.is_available():
            return "GPU"
        if device_context.ascend.is_available():
            return "Ascend"
    except Exception:  # availability probes differ between wheels; CPU always works
        pass
    return "CPU"


def select_device(requested: Optional[str]) -> str:
    """'auto'/None -> best_device(); otherwise a checked, canonically spelled device name."""
    if requested is None or str(requested).lower() == "auto":
        return best_device()
    for name in DEVICES:
        if str(requested).lower() == name.lower():
            return name
    raise ValueError(f"context.device_target: expected auto, CPU, GPU or Ascend, got '{requested}'")


def init_context(ctx: Mapping[str, Any], device: Optional[str] = None) -> str:
    """Apply a config's ``context`` section (``device`` from the CLI wins). Returns the device."""
    target = select_device(device or ctx.get("device_target", "auto"))
    mode = int(ctx.get("mode", 0))
    if mode not in (0, 1):
        raise ValueError(f"context.mode: expected 0 (graph) or 1 (PyNative), got {mode}")
    ms.set_context(mode=ms.GRAPH_MODE if mode == 0 else ms.PYNATIVE_MODE)
    ms.set_device(target, int(ctx.get("device_id", 0)) if target != "CPU" else None)
    seed_everything(int(ctx.get("seed", 0)))
    return target


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    ms.set_seed(seed)
