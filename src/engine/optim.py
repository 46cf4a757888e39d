"""Optimizers (registry ``OPTIMIZERS``), with BatchNorm and bias parameters kept out of weight decay."""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np
from mindspore import Parameter, Tensor, nn

from ..registry import OPTIMIZERS

NO_DECAY_SUFFIXES = (".gamma", ".beta", ".bias")


def is_no_decay(param: Parameter) -> bool:
    """BatchNorm gamma/beta and biases: no weight decay (SlowFast's BN parameter group)."""
    return param.name.endswith(NO_DECAY_SUFFIXES) or param.ndim <= 1


def param_groups(params: Sequence[Parameter], weight_decay: float, bn_weight_decay: float) -> List[Dict]:
    """Two groups: conv/linear weights with ``weight_decay``, BN/bias with ``bn_weight_decay``."""
    decay = [p for p in params if not is_no_decay(p)]
    no_decay = [p for p in params if is_no_decay(p)]
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": float(weight_decay)})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": float(bn_weight_decay)})
    return groups


def _lr(learning_rate) -> Tensor:
    return Tensor(np.asarray(learning_rate, np.float32)) if not isinstance(learning_rate, float) else learning_rate


@OPTIMIZERS.register("sgd")
def sgd(*, params: Sequence[Parameter], learning_rate, momentum: float = 0.9, nesterov: bool = True,
        weight_decay: float = 5e-5, bn_weight_decay: float = 0.0) -> nn.Optimizer:
    """SGD with (Nesterov) momentum; ``learning_rate`` is a per-step array or a float."""
    return nn.SGD(param_groups(list(params), weight_decay, bn_weight_decay), learning_rate=_lr(learning_rate),
                  momentum=momentum, nesterov=nesterov)


@OPTIMIZERS.register("adamw")
def adamw(*, params: Sequence[Parameter], learning_rate, weight_decay: float = 0.05,
          bn_weight_decay: float = 0.0, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> nn.Optimizer:
    """AdamW (decoupled weight decay), BN/bias excluded from decay."""
    return nn.AdamWeightDecay(param_groups(list(params), weight_decay, bn_weight_decay),
                              learning_rate=_lr(learning_rate), beta1=betas[0], beta2=betas[1], eps=eps)


# MindSpore built-ins, registered by explicit choice (config gives their own keyword arguments)
OPTIMIZERS.register("SGD", nn.SGD)
OPTIMIZERS.register("Momentum", nn.Momentum)
OPTIMIZERS.register("AdamWeightDecay", nn.AdamWeightDecay)
