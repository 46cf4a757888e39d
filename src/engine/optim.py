"""Optimizers (registry ``OPTIMIZERS``) with SlowFast's weight-decay groups.

Default (SlowFast ``construct_optimizer``): BatchNorm gamma/beta at ``bn_weight_decay``, every
other parameter (convolution and linear weights, biases of the SE and classifier layers) at
``weight_decay``. ``zero_wd_1d_params: true`` (SlowFast ``ZERO_WD_1D_PARAM``) also takes every
1-D tensor (biases, scalars) out of weight decay, leaving it on the kernels only (the MoViNet
recipe's L2). ``rmsprop``: TF/Keras RMSprop semantics (the MoViNet recipe).
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np
from mindspore import Parameter, Tensor, jit, nn, ops

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


_keras_rmsprop = ops.MultitypeFuncGraph("keras_rmsprop")


@_keras_rmsprop.register("Number", "Number", "Number", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor")
def _keras_rmsprop_one(rho, momentum, epsilon, lr, weight, mean_square, moment, grad):
    mean_square_t = rho * mean_square + (1.0 - rho) * ops.square(grad)
    moment_t = momentum * moment + lr * grad / ops.sqrt(mean_square_t + epsilon)
    update = ops.assign(mean_square, mean_square_t)
    update = ops.depend(update, ops.assign(moment, moment_t))
    return ops.depend(update, ops.assign_sub(weight, moment_t))


class KerasRMSProp(nn.Optimizer):
    """RMSprop as ``tf.keras.optimizers.RMSprop`` (TF's ``ApplyRMSProp``), per step::

        ms  = rho * ms + (1 - rho) * g**2           # ms and mom start at 0 (Keras' slots)
        mom = momentum * mom + lr * g / sqrt(ms + epsilon)
        w   = w - mom

    written with plain ops rather than MindSpore's ``nn.RMSProp``: that one starts ``ms`` at 1,
    and its CPU ``ApplyRMSProp`` kernel (MindSpore 2.10) divides the elements it handles in blocks
    of 8 by ``sqrt(ms) + epsilon`` and only the remainder by ``sqrt(ms + epsilon)`` (at epsilon 1
    a step 1.3x smaller on most elements; tests/config/test_movinet_recipe.py checks the rule)."""

    def __init__(self, params, learning_rate, rho: float = 0.9, momentum: float = 0.0, epsilon: float = 1e-7,
                 weight_decay: float = 0.0) -> None:
        super().__init__(learning_rate, params, weight_decay)
        if not 0.0 <= rho < 1.0 or momentum < 0.0 or not epsilon > 0.0:
            raise ValueError(f"optimizer: rmsprop needs 0 <= rho < 1, momentum >= 0 and epsilon > 0, "
                             f"got rho {rho}, momentum {momentum}, epsilon {epsilon}")
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)
        self.mean_square = self._parameters.clone(prefix="mean_square", init="zeros")
        self.moment = self._parameters.clone(prefix="moment", init="zeros")

    @jit
    def construct(self, gradients):
        params = self._parameters
        gradients = self.decay_weight(gradients)  # + weight_decay * w per group (coupled L2)
        gradients = self.gradients_centralization(gradients)
        gradients = self.scale_grad(gradients)
        lr = self.get_lr()
        self.assignadd(self.global_step, self.global_step_increase_tensor)
        if self.is_group_lr:
            return self.hyper_map(ops.partial(_keras_rmsprop, self.rho, self.momentum, self.epsilon),
                                  lr, params, self.mean_square, self.moment, gradients)
        return self.hyper_map(ops.partial(_keras_rmsprop, self.rho, self.momentum, self.epsilon, lr),
                              params, self.mean_square, self.moment, gradients)


@OPTIMIZERS.register("rmsprop")
def rmsprop(*, params: Sequence[Parameter], learning_rate, rho: float = 0.9, momentum: float = 0.9,
            epsilon: float = 1.0, weight_decay: float = 0.0, bn_weight_decay: float = 0.0,
            zero_wd_1d_params: bool = False) -> nn.Optimizer:
    """:class:`KerasRMSProp` (the MoViNet recipe's optimizer) with the same weight-decay groups
    as ``sgd``. Keras / TF names: ``rho`` (MindSpore ``decay``, torch ``alpha``), ``momentum``,
    ``epsilon`` (inside the square root as in TF and MindSpore's documented rule; torch's
    RMSprop adds its ``eps`` outside, ``sqrt(ms) + eps``, so a torch eps is not this one).
    ``weight_decay`` adds ``weight_decay * w`` to the gradient before the update, the gradient of
    a Keras ``l2(weight_decay / 2)`` kernel regularizer; with ``zero_wd_1d_params`` only tensors of
    2+ dimensions (convolution and dense kernels) get it, BatchNorm gamma/beta ``bn_weight_decay``."""
    return KerasRMSProp(param_groups(list(params), weight_decay, bn_weight_decay, zero_wd_1d_params),
                        learning_rate=_lr(learning_rate), rho=float(rho), momentum=float(momentum),
                        epsilon=float(epsilon))

# MindSpore built-ins, registered by explicit choice (config gives their own keyword arguments)
OPTIMIZERS.register("SGD", nn.SGD)
OPTIMIZERS.register("Momentum", nn.Momentum)
OPTIMIZERS.register("AdamWeightDecay", nn.AdamWeightDecay)
