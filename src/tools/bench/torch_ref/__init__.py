"""Torch reference networks of the Efficient-3DCNNs (``e3d_light``: MobileNet, MobileNetV2,
ShuffleNet, ShuffleNetV2; ``e3d_heavy``: SqueezeNet, ResNet, ResNeXt), written from the paper's
code independently of ``src/models``.

They live in the package, not beside the test suite, because the benchmark runs them and an
installed package has no test folder; the parity test helpers import them from here (one copy).
torch is imported only when one of them is: without it the import is a one-line
:class:`TorchMissing`.
"""
from __future__ import annotations

import importlib.util
from types import ModuleType

from ....errors import UserError

TORCH_HINT = "the benchmark needs torch (pip install torch==2.13.0, CPU build); it is not a runtime dependency"


class TorchMissing(UserError):
    """torch is not installed (one line, exit 2 through src.cli.run_cli)."""


def torch_available() -> bool:
    """Whether torch can be imported (without importing it)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def require_torch() -> ModuleType:
    """``import torch``, or :class:`TorchMissing` saying how to get it."""
    try:
        import torch
    except ImportError:
        raise TorchMissing(TORCH_HINT) from None
    return torch


__all__ = ["TORCH_HINT", "TorchMissing", "torch_available", "require_torch"]
