"""BatchNorm over 5D video tensors with the reference defaults and flat parameter names, and the
``model.norm`` choice: ``bn`` (per-device batch statistics) or ``syncbn`` (statistics over every
device of a data-parallel run, MindSpore's SyncBatchNorm operator).

``syncbn`` keeps the class, the parameter names and the shapes of ``bn`` (checkpoints load either
way); only the training-mode operator changes, to the ``SyncBatchNorm`` primitive that
``mindspore.nn.SyncBatchNorm`` itself uses, on the world group of the run (``hccl_world_group``
on Ascend, ``nccl_world_group`` on GPU). Why not ``nn.SyncBatchNorm`` cells: they are not
``nn.BatchNorm2d`` instances, which BatchNorm folding, precise BN, ``last_layer`` freezing and the
mixed-precision float32 list recognise, and they take 2D/4D input only. MindSpore 2.10 has no
CPU kernel for it ("Unsupported op [SyncBatchNorm] on CPU", measured under msrun), so ``syncbn``
with several CPU processes is a one-line error; with one process there is nothing to synchronise
and it is plain BatchNorm on every device (eval, infer and export of a ``syncbn`` run's config).
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator, Optional, Tuple

import mindspore as ms
from mindspore import nn

from ...errors import UserError

NORMS = ("bn", "syncbn")
SYNC_DEVICES = ("GPU", "Ascend")
# the scoped choice of the layers built inside use_norm(): (norm, explicit group or None)
_SCOPED: contextvars.ContextVar[Tuple[str, Optional[Tuple[str, int]]]] = contextvars.ContextVar(
    "norm_layer", default=("bn", None))


@contextlib.contextmanager
def use_norm(norm: str, group: Optional[Tuple[str, int]] = None) -> Iterator[None]:
    """Build the :class:`BatchNorm3d` layers created inside the block as ``norm`` (``bn`` or
    ``syncbn``). ``group``: ``(communication group name, device count)`` to share statistics over
    (default: the world group of the run, see :func:`sync_group`). Scoped to the block; nests."""
    if norm not in NORMS:
        raise UserError(f"model.norm: expected one of {', '.join(NORMS)}, got {norm!r}")
    token = _SCOPED.set((norm, group if group is not None else _SCOPED.get()[1]))  # an outer group stays
    try:
        yield
    finally:
        _SCOPED.reset(token)


def sync_group(device: Optional[str] = None, group_size: Optional[int] = None) -> Optional[Tuple[str, int]]:
    """``(world group name, device count)`` that ``syncbn`` shares statistics over, or None with
    one process (nothing to synchronise). ``device``/``group_size`` default to the run's (the
    context's device target; the communication group size, 1 before ``init()``). Several CPU
    processes: a one-line error naming the devices SyncBatchNorm needs."""
    device = device or ms.get_context("device_target")
    if group_size is None:
        try:
            from mindspore.communication import get_group_size
            group_size = int(get_group_size())
        except Exception:  # communication not initialised: a single process
            group_size = 1
    if group_size <= 1:
        return None
    if device not in SYNC_DEVICES:
        raise UserError(f"model.norm=syncbn: SyncBatchNorm runs on {' or '.join(SYNC_DEVICES)} (MindSpore has no "
                        f"{device} kernel), this run has {group_size} {device} processes; use model.norm=bn")
    # the world groups nn.SyncBatchNorm names for these devices
    return ("hccl_world_group" if device == "Ascend" else "nccl_world_group"), group_size


class BatchNorm3d(nn.BatchNorm2d):
    """BatchNorm over (N, C, T, H, W) with reference defaults (eps 1e-5, torch momentum 0.1).

    A subclass rather than ``nn.BatchNorm3d`` so parameter names stay flat
    (``bn.gamma``, not ``bn.bn2d.gamma``). Built inside ``use_norm("syncbn")`` in a multi-device
    run, training-mode statistics are computed over every device (``self.sync_group`` says which).
    """

    def __init__(self, num_features: int, *, eps: float = 1e-5, momentum: float = 0.9,
                 zero_init: bool = False) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum,
                         gamma_init="zeros" if zero_init else "ones")
        norm, group = _SCOPED.get()
        self.norm = norm
        self.sync_group = (group or sync_group()) if norm == "syncbn" else None
        if self.sync_group is not None:
            from mindspore.ops.operations import _inner_ops as inner
            name, size = self.sync_group
            # what nn.SyncBatchNorm builds for its world group (same epsilon/momentum convention)
            self.bn_train = inner.SyncBatchNorm(epsilon=self.eps, momentum=self.momentum, group=name,
                                                device_num=size)

    def construct(self, x):
        n, c, t, h, w = x.shape
        y = super().construct(x.reshape(n, c, t * h, w))
        return y.reshape(n, c, t, h, w)


__all__ = ["BatchNorm3d", "NORMS", "sync_group", "use_norm"]
