"""Optimizers (registry ``OPTIMIZERS``) with SlowFast's weight-decay groups.

Default (SlowFast ``construct_optimizer``): BatchNorm gamma/beta at ``bn_weight_decay``, every
other parameter (convolution and linear weights, biases of the SE and classifier layers) at
``weight_decay``. ``zero_wd_1d_params: true`` (SlowFast ``ZERO_WD_1D_PARAM``) also takes every
1-D tensor (biases) out of weight decay.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np
from mindspore import Parameter, Tensor, nn

from ..registry import OPTIMIZERS

BN_SUFFIXES = (".gamma", ".beta")  # MindSpore's BatchNorm affine parameters


def is_bn(param: Parameter) -> bool:
    """A BatchNorm scale or shift (SlowFast's BN parameter group)."""
    return param.name.endswith(BN_SUFFIXES)


def param_groups(params: Sequence[Parameter], weight_decay: float, bn_weight_decay: float,
                 zero_wd_1d_params: bool = False) -> List[Dict]:
    """Up to three groups: BN gamma/beta at ``bn_weight_decay``; with ``zero_wd_1d_params`` the
    other 1-D tensors at 0; everything else at ``weight_decay``."""
    bn = [p for p in params if is_bn(p)]
    zero = [p for p in params if zero_wd_1d_params and not is_bn(p) and p.ndim <= 1]
    taken = {id(p) for p in bn + zero}
    rest = [p for p in params if id(p) not in taken]
    groups = []
    for members, wd in ((rest, weight_decay), (bn, bn_weight_decay), (zero, 0.0)):
        if members:
            groups.append({"params": members, "weight_decay": float(wd)})
    return groups


def _lr(learning_rate) -> Tensor:
    return Tensor(np.asarray(learning_rate, np.float32)) if not isinstance(learning_rate, float) else learning_rate


@OPTIMIZERS.register("sgd")
def sgd(*, params: Sequence[Parameter], learning_rate, momentum: float = 0.9, nesterov: bool = True,
        dampening: float = 0.0, weight_decay: float = 5e-5, bn_weight_decay: float = 0.0,
        zero_wd_1d_params: bool = False) -> nn.Optimizer:
    """SGD with (Nesterov) momentum, torch semantics (``dampening`` scales the new gradient in the
    momentum buffer, as the Efficient-3DCNNs recipe's 0.9); ``learning_rate`` is a per-step array or a float."""
    if nesterov and dampening:
        raise ValueError("optimizer: nesterov momentum needs dampening 0 (torch and MindSpore refuse both)")
    return nn.SGD(param_groups(list(params), weight_decay, bn_weight_decay, zero_wd_1d_params),
                  learning_rate=_lr(learning_rate), momentum=momentum, dampening=dampening, nesterov=nesterov)


@OPTIMIZERS.register("adamw")
def adamw(*, params: Sequence[Parameter], learning_rate, weight_decay: float = 0.05,
          bn_weight_decay: float = 0.0, zero_wd_1d_params: bool = False,
          betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> nn.Optimizer:
    """AdamW (decoupled weight decay), with the same groups as ``sgd``."""
    return nn.AdamWeightDecay(param_groups(list(params), weight_decay, bn_weight_decay, zero_wd_1d_params),
                              learning_rate=_lr(learning_rate), beta1=betas[0], beta2=betas[1], eps=eps)


# MindSpore built-ins, registered by explicit choice (config gives their own keyword arguments)
OPTIMIZERS.register("SGD", nn.SGD)
OPTIMIZERS.register("Momentum", nn.Momentum)
OPTIMIZERS.register("AdamWeightDecay", nn.AdamWeightDecay)
