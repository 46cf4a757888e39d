"""Parameter helpers shared by the convolution cells: the references' weight init, and the bias a
folded BatchNorm gives a convolution (``src/models/fold.py`` calls the cells' ``set_bias``)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import mindspore as ms
from mindspore import Parameter, Tensor, nn
from mindspore.common.initializer import HeNormal, initializer


def kaiming_fan_out(shape: Sequence[int]) -> Tensor:
    """Kaiming-normal (fan_out, ReLU gain) init as the references use for every conv."""
    return initializer(HeNormal(mode="fan_out", nonlinearity="relu"), tuple(shape), ms.float32)


def checked_bias(cell: nn.Cell, bias: np.ndarray, channels: int) -> np.ndarray:
    """``bias`` as float32 (channels,), or a ValueError naming the cell's class."""
    bias = np.asarray(bias, np.float32)
    if bias.shape != (channels,):
        raise ValueError(f"{type(cell).__name__} bias must have shape ({channels},), got {bias.shape}")
    return bias


def set_bias_parameter(cell: nn.Cell, bias: np.ndarray, channels: int) -> None:
    """Give ``cell`` the per-channel ``bias`` (a new parameter ``bias``, or new data for its own)."""
    bias = checked_bias(cell, bias, channels)
    if cell.bias is None:
        cell.bias = Parameter(Tensor(bias), name="bias")
    else:
        cell.bias.set_data(Tensor(bias))


__all__ = ["kaiming_fan_out", "checked_bias", "set_bias_parameter"]
