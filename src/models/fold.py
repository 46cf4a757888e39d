"""Folding eval-mode BatchNorm into the convolution before it, for inference and export.

In eval mode ``bn(conv(x)) = s * (conv(x) - mean) + beta`` with ``s = gamma / sqrt(var + eps)``,
which is one convolution with weight ``W * s`` (per output channel) and bias ``beta - s * mean``.
Folding removes every BatchNorm op from the graph (84 in X3D-XS, a quarter of its batch-1 CPU
forward time) and the result equals the unfolded eval-mode network to float rounding
(``tests/models/test_fold.py``). The channelwise C++ kernel adds the bias in its own pass.

Cells declare their (convolution, BatchNorm) attribute pairs in ``conv_bn_pairs``; a folded
BatchNorm is replaced by ``nn.Identity`` and the cell's ``bn_folded`` set, so that its
``construct`` may hand the activation after the convolution to the convolution itself (the C++
pointwise kernel's fused bias + ReLU / residual + ReLU). The folded network has no BatchNorm left to train: it is
for evaluation, inference and export (``eval.py``, ``infer.py``, ``src.tools.export`` fold by
default). Checkpoints are always written from the unfolded training network.
"""
from __future__ import annotations

import numpy as np
from mindspore import Tensor, nn


def fold_batchnorm(net: nn.Cell) -> nn.Cell:
    """Fold every declared (conv, BatchNorm) pair of ``net`` in place; returns ``net`` in eval mode.

    Call it before the network first runs: graph mode keeps the graph it compiled, which would
    still apply the BatchNorms to the folded weights.
    """
    if getattr(net, "bn_folded", False):
        return net
    if any(getattr(cell, "_compile_cache", None) for _, cell in net.cells_and_names()):
        raise RuntimeError("fold_batchnorm: the network has already been compiled in graph mode; "
                           "fold a freshly built (and loaded) network before its first call")
    net.set_train(False)
    owners = [cell for _, cell in net.cells_and_names() if getattr(cell, "conv_bn_pairs", None) is not None]
    for cell in owners:
        for conv_name, bn_name in cell.conv_bn_pairs:
            bn = getattr(cell, bn_name)
            if not isinstance(bn, nn.BatchNorm2d):
                continue  # folded before
            _fold_pair(getattr(cell, conv_name), bn)
            setattr(cell, bn_name, nn.Identity())
        cell.bn_folded = True
    net.set_train(False)
    net.bn_folded = True
    return net


def _fold_pair(conv: nn.Cell, bn: nn.BatchNorm2d) -> None:
    if not hasattr(conv, "set_bias"):
        raise TypeError(f"cannot fold BatchNorm into {type(conv).__name__} (it has no set_bias)")
    var = bn.moving_variance.asnumpy().astype(np.float64)
    scale = bn.gamma.asnumpy().astype(np.float64) / np.sqrt(var + bn.eps)
    shift = bn.beta.asnumpy().astype(np.float64) - scale * bn.moving_mean.asnumpy().astype(np.float64)
    w = conv.weight.asnumpy().astype(np.float64)
    if w.shape[0] != scale.shape[0]:
        raise ValueError(f"cannot fold BatchNorm of {scale.shape[0]} channels into a convolution with "
                         f"{w.shape[0]} outputs ({conv.weight.name})")
    conv.weight.set_data(Tensor((w * scale.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32)))
    old = conv.bias.asnumpy().astype(np.float64) if conv.bias is not None else 0.0
    conv.set_bias((shift + scale * old).astype(np.float32))
    if conv.weight.name.endswith("weight"):  # full name, as a checkpoint of the folded net would have
        conv.bias.name = conv.weight.name[: -len("weight")] + "bias"
