"""The graph-mode train step: mixed precision, loss scaling, gradient clipping and accumulation.

One call of :class:`TrainStep` is one micro-batch: forward, backward and, every
``accumulate_steps``-th call, the update. In order, inside one compiled graph:

1. forward of the (mixed-precision) network; the loss is computed in float32;
2. gradients of ``loss * scale`` (``scale`` = the loss scale, 1 without scaling) with respect to
   the float32 master weights;
3. with ``accumulate_steps = k > 1``: added to a float32 buffer; only every k-th call goes on,
   with the buffer's sum divided by k (the gradient of the mean loss over k micro-batches);
4. the data-parallel gradient mean (``DATA_PARALLEL``: one all-reduce per optimizer step);
5. unscaled (divided by the scale), checked for inf/NaN (as ``mindspore.amp.all_finite``) and
   the scale adjusted (``mindspore.amp.DynamicLossScaler.adjust``: divided by ``factor`` on an
   overflow, multiplied by it after ``window`` finite steps in a row);
6. clipped: by global norm (``clip_grad="norm"``: all gradients scaled by
   ``min(1, clip_value / global_norm)``) or by value (``clip_grad="value"``: each element into
   ``[-clip_value, clip_value]``);
7. the optimizer update, unless the gradients overflowed: then the weights, the momentum and the
   other optimizer state stay as they were and ``train_step.overflow_steps`` counts the skipped
   update. The optimizer's step counter (which indexes the per-step LR array) still advances, so
   the LR of step ``s`` is ``lr[s]`` whether or not earlier updates were skipped.

With any of scaling, clipping or accumulation on, steps 3-6 work on one flat float32 vector of
all gradients (one concatenation per call, one split back to per-weight tensors per update): on
MindSpore's CPU runtime every kernel launch costs about as much as a small tensor's arithmetic,
and per-tensor passes would launch a few kernels for each of the network's gradient tensors.
With none of them the step is MindSpore's ``TrainOneStepCell``.

The step's own state lives in Parameters named ``train_step.*`` (the loss scale, its growth
counter, the overflow count, the micro-batch counter, the accumulation buffer
``train_step.grad_accum``: every gradient, flattened in the order of the weights), so a
checkpoint of the cell holds them and ``--resume`` restores them.

Mixed precision (:func:`apply_amp`) uses MindSpore's own cell casting (``Cell.to_float`` and
``mindspore.amp``'s float16/float32 output wrappers), with a black list that also keeps the zoo's
C++ CPU kernels (``cpp``, ``gemm``, ``direct`` formulations; float32 only) in float32.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

import mindspore as ms
from mindspore import Parameter, Tensor, amp, nn, ops
from mindspore.common import dtype as mstype
from mindspore.nn.wrap.grad_reducer import DistributedGradReducer
from mindspore.ops.auto_generate import SplitWithSize
from mindspore.train.amp import _OutputTo16, _OutputTo32

from ..errors import UserError

AMP_LEVELS = ("O0", "O1", "O2", "O3", "auto")
# train.amp_level=auto: the level used on each device (mindcv's configs and MindSpore's model zoo
# train GPU and Ascend at O2; CPU stays float32: float16 kernels there are emulated and slower)
DEVICE_AMP_LEVEL = {"CPU": "O0", "GPU": "O2", "Ascend": "O2"}
LOSS_SCALE_TYPES = ("none", "fixed", "dynamic")
CLIP_MODES = ("none", "norm", "value")
CPP_IMPLS = ("cpp", "gemm", "direct")  # the C++ CPU kernels' formulations (float32 only)
NORM_CELLS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm)
PREFIX = "train_step."  # names of the step's own parameters (checkpoint.STEP_PREFIX: training state)


# ----------------------------------------------------------------------------------- mixed precision
def resolve_amp_level(level: str, device: Optional[str] = None) -> str:
    """``level`` itself, or for ``auto`` the level of :data:`DEVICE_AMP_LEVEL` for ``device``
    (default: the context's device target)."""
    if level not in AMP_LEVELS:
        raise UserError(f"train.amp_level: expected one of {', '.join(AMP_LEVELS)}, got {level!r}")
    if level != "auto":
        return level
    device = device or ms.get_context("device_target")
    return DEVICE_AMP_LEVEL.get(device, "O0")


def runs_float32_only(cell: nn.Cell) -> bool:
    """A cell that trains with one of the zoo's C++ CPU kernels (``impl`` cpp, gemm or direct).
    ``PointwiseConv3d`` is not one: it trains with MindSpore's Conv3D whatever its ``impl``
    (its C++ kernel is the fused inference pass; :func:`apply_amp` turns that off)."""
    from ..models.layers import PointwiseConv3d
    return getattr(cell, "impl", None) in CPP_IMPLS and not isinstance(cell, PointwiseConv3d)


def _native_pointwise(net: nn.Cell) -> None:
    """Pointwise layers evaluate (validation during training) with MindSpore's Conv3D, which takes
    float16, instead of their float32-only fused C++ inference pass."""
    from ..models.layers import PointwiseConv3d
    for _, cell in net.cells_and_names():
        if isinstance(cell, PointwiseConv3d) and cell.impl == "cpp":
            cell.impl = "native"


def _is_white(cell: nn.Cell) -> bool:
    """O1's float16 cells: convolutions and Dense layers that MindSpore itself computes."""
    from ..models.layers import ChannelwiseConv3d, Conv3d, PointwiseConv3d
    return isinstance(cell, (nn.Dense, nn.Conv1d, nn.Conv2d, nn.Conv3d, Conv3d, ChannelwiseConv3d, PointwiseConv3d)) \
        and not runs_float32_only(cell)


def _keep_float32(root: nn.Cell, keep_norm: bool) -> int:
    """MindSpore's O2 black-list pass (``amp._auto_black_list``) with our list: every norm cell
    (when ``keep_norm``) and every C++-kernel cell computes in float32 (its inputs cast up) and
    hands float16 on (``_OutputTo16``). Returns the cells kept in float32."""
    kept = 0
    for name, sub in list(root.name_cells().items()):
        if sub is root:
            continue
        if (keep_norm and isinstance(sub, NORM_CELLS)) or runs_float32_only(sub):
            root._cells[name] = _OutputTo16(sub.to_float(mstype.float32))
            kept += 1
        else:
            kept += _keep_float32(sub, keep_norm)
    if isinstance(root, nn.SequentialCell) and kept:
        root.cell_list = list(root.cells())
    return kept


def apply_amp(net: nn.Cell, level: str) -> nn.Cell:
    """The network to train at ``level`` (``net`` is changed in place; its parameters stay float32).

    * ``O0``: ``net`` unchanged (float32).
    * ``O1``: convolutions and Dense layers computed by MindSpore run in float16 (their inputs and
      weights cast down), everything else float32 (MindSpore's O1 white list, as cell flags:
      its O1 rewrites the network's source, which the zoo's layers do not go through).
    * ``O2``: everything float16 except BatchNorm (and the other norm layers) and the C++-kernel
      cells, which compute in float32 (MindSpore's O2 with that black list).
    * ``O3``: everything float16 except the C++-kernel cells (BatchNorm too, as MindSpore's O3).

    The returned cell's output is float32 at O1-O3 (the loss is computed in float32)."""
    level = resolve_amp_level(level)
    if level == "O0":
        return net
    _native_pointwise(net)
    if level == "O1":
        net.to_float(mstype.float32)
        for _, cell in net.cells_and_names():
            if _is_white(cell):
                cell.to_float(mstype.float16)
        return _OutputTo32(net)
    net.to_float(mstype.float16)
    _keep_float32(net, keep_norm=level == "O2")
    return _OutputTo32(net)


class LossInFloat32(nn.Cell):
    """``loss_fn(float32(net(x)), label)`` (``nn.WithLossCell`` with the network output cast up)."""

    def __init__(self, net: nn.Cell, loss_fn: nn.Cell) -> None:
        super().__init__(auto_prefix=False)
        self._backbone = net
        self._loss_fn = loss_fn

    def construct(self, data, label):
        return self._loss_fn(ops.cast(self._backbone(data), mstype.float32), label)


# ----------------------------------------------------------------------------------- gradients
_hyper = ops.HyperMap()


def global_norm(grads: Tuple[Tensor, ...]) -> Tensor:
    """sqrt(sum of squares of every element of every gradient), float32."""
    return ops.sqrt(ops.addn([ops.reduce_sum(ops.square(g.astype(mstype.float32))) for g in grads]))


def clip_by_global_norm(grads: Tuple[Tensor, ...], max_norm: float) -> Tuple[Tensor, ...]:
    """All gradients times ``min(1, max_norm / global_norm)`` (torch's ``clip_grad_norm_``,
    without its 1e-6 in the divisor)."""
    norm = global_norm(grads)
    factor = ops.minimum(ops.ones_like(norm), max_norm / ops.maximum(norm, 1e-30))
    return _hyper(ops.partial(_mul, factor), grads)


def _mul(factor, g):
    return g * factor.astype(g.dtype)


# The options' work runs on one flat float32 vector of all gradients: each per-tensor op is a kernel
# launch, and on MindSpore's CPU runtime a launch costs about as much as a small tensor's
# arithmetic, so a few ops over one vector replace a few ops per gradient tensor. Primitives (not
# the functional wrappers, whose argument checks are re-parsed once per tensor) keep the compile short.
_reshape = ops.Reshape()
_concat = ops.Concat(0)
_split = SplitWithSize()
SPLIT_CHUNK = 64  # sizes per SplitWithSize call (TrainStep.size_chunks)
_flat = ops.MultitypeFuncGraph("flat")
_unflat = ops.MultitypeFuncGraph("unflat")


@_flat.register("Tensor")
def _flat_one(g):
    if g.dtype != mstype.float32:  # decided at compile time: no Cast kernel for float32 gradients
        g = ops.cast(g, mstype.float32)
    return _reshape(g, (-1,))


@_unflat.register("Tensor", "Tensor")
def _unflat_one(weight, part):
    part = _reshape(part, ops.shape(weight))
    if weight.dtype != mstype.float32:
        part = ops.cast(part, weight.dtype)
    return part


def flatten(tensors: Tuple[Tensor, ...]) -> Tensor:
    """All of ``tensors`` as one float32 vector (in order): one concatenation."""
    return _concat(_hyper(_flat, tensors))


# ----------------------------------------------------------------------------------- the cell
class TrainStep(nn.TrainOneStepCell):
    """Forward + backward + (data-parallel gradient mean) + update; returns the float32 loss of
    the micro-batch. With the defaults it is MindSpore's ``TrainOneStepCell`` (float32, no
    scaling, no clipping, an update every call).

    ``amp_level``: O0 | O1 | O2 | O3 | auto (:func:`apply_amp`). ``loss_scale_type``: none |
    fixed (``loss_scale`` throughout) | dynamic (starts at ``loss_scale``; / ``loss_scale_factor``
    on an overflow, * it after ``loss_scale_window`` finite steps). With either scale an update
    whose gradients are not finite is skipped. ``clip_grad``: none | norm | value, with
    ``clip_value`` (the max global norm, or the max absolute value). ``accumulate_steps``:
    micro-batches per update."""

    def __init__(self, net: nn.Cell, loss_fn: nn.Cell, optimizer: nn.Optimizer, *, amp_level: str = "O0",
                 loss_scale_type: str = "none", loss_scale: float = 65536.0, loss_scale_factor: int = 2,
                 loss_scale_window: int = 2000, clip_grad: str = "none", clip_value: float = 1.0,
                 accumulate_steps: int = 1) -> None:
        self.amp_level = resolve_amp_level(amp_level)
        if loss_scale_type not in LOSS_SCALE_TYPES:
            raise UserError(f"train.loss_scale_type: expected one of {', '.join(LOSS_SCALE_TYPES)}, "
                            f"got {loss_scale_type!r}")
        if clip_grad not in CLIP_MODES:
            raise UserError(f"train.clip_grad: expected one of {', '.join(CLIP_MODES)}, got {clip_grad!r}")
        if loss_scale_type != "none" and not loss_scale >= 1.0:
            raise UserError(f"train.loss_scale: expected a float >= 1, got {loss_scale!r}")
        if clip_grad != "none" and not clip_value > 0:
            raise UserError(f"train.clip_value: expected a float > 0, got {clip_value!r}")
        if int(accumulate_steps) != accumulate_steps or accumulate_steps < 1:
            raise UserError(f"train.accumulate_steps: expected an int >= 1, got {accumulate_steps!r}")
        network = apply_amp(net, self.amp_level)
        with_loss = nn.WithLossCell(network, loss_fn) if network is net else LossInFloat32(network, loss_fn)
        super().__init__(with_loss, optimizer)
        self.net = net  # the model itself (train_mode, classifier names); ``network`` is net + loss
        self.loss_scale_type = loss_scale_type
        self.scaling = loss_scale_type != "none"
        self.clip_mode = clip_grad
        self.clip_value = float(clip_value)
        self.accumulate_steps = int(accumulate_steps)
        self.accumulating = self.accumulate_steps > 1
        if loss_scale_type == "dynamic":
            self.scaler = amp.DynamicLossScaler(float(loss_scale), int(loss_scale_factor), int(loss_scale_window))
            self.scaler.counter.name = PREFIX + "loss_scale_counter"
            self.loss_scale_counter = self.scaler.counter
        else:  # fixed (or 1 without scaling, where it is never used)
            self.scaler = amp.StaticLossScaler(float(loss_scale) if self.scaling else 1.0)
        self.scaler.scale_value.name = PREFIX + "loss_scale"
        if self.scaling:
            self.loss_scale = self.scaler.scale_value  # registered: saved in checkpoints
            self.overflow_steps = Parameter(Tensor(0, mstype.int32), name=PREFIX + "overflow_steps",
                                            requires_grad=False)
        # any option on: the gradients go through one flat float32 vector (see ``flatten``)
        self.fused = self.scaling or self.clip_mode != "none" or self.accumulating
        self.sizes = tuple(int(np.prod(w.shape)) for w in self.weights)
        numel = sum(self.sizes)
        # the split back in chunks of SPLIT_CHUNK sizes: MindSpore's graph compiler checks a size list
        # with one nested call per entry and stops at a depth of 1000 (a few hundred tensors)
        self.size_chunks = tuple(self.sizes[i:i + SPLIT_CHUNK] for i in range(0, len(self.sizes), SPLIT_CHUNK))
        self.chunk_totals = tuple(sum(c) for c in self.size_chunks)
        if self.accumulating:
            self.micro_step = Parameter(Tensor(0, mstype.int32), name=PREFIX + "micro_step", requires_grad=False)
            self.accum_buffer = Parameter(Tensor(np.zeros(numel, np.float32)), name=PREFIX + "grad_accum",
                                          requires_grad=False)
            self.inv_k = Tensor(1.0 / self.accumulate_steps, mstype.float32)
        if self.fused and self.reducer_flag:  # the data-parallel mean: one all-reduce of the flat vector
            self.flat_reducer = DistributedGradReducer([Parameter(Tensor(np.zeros(1, np.float32)), name="flat_grads")],
                                                       self.mean, self.degree)

    @property
    def grad_accum(self) -> Tuple[Parameter, ...]:
        """The accumulation buffer(s): one flat float32 vector of every gradient (``train_step.grad_accum``)."""
        return (self.accum_buffer,) if self.accumulating else ()

    # -- what the loop reads between steps
    def current_loss_scale(self) -> Optional[float]:
        """The loss scale now (None without loss scaling)."""
        return float(self.loss_scale.asnumpy()) if self.scaling else None

    def skipped_updates(self) -> int:
        """Updates skipped because their gradients overflowed, over the whole run (resumed runs included)."""
        return int(self.overflow_steps.asnumpy()) if self.scaling else 0

    # -- the graph
    def construct(self, *inputs):
        loss = self.network(*inputs)
        if not self.fused:  # MindSpore's TrainOneStepCell
            grads = self.grad_no_sens(self.network, self.weights)(*inputs)
            return ops.depend(loss, self.optimizer(self.grad_reducer(grads)))
        if self.scaling:
            sens = ops.fill(loss.dtype, loss.shape, self.scaler.scale_value.astype(loss.dtype))
            grads = self.grad(self.network, self.weights)(*inputs, sens)
        else:
            grads = self.grad_no_sens(self.network, self.weights)(*inputs)
        flat = flatten(grads)
        if not self.accumulating:
            return self._update(loss, flat)
        count = self.micro_step + 1
        if count >= self.accumulate_steps:
            loss = self._update(loss, self.accum_buffer + flat)
            loss = ops.depend(loss, ops.assign(self.accum_buffer, ops.zeros_like(self.accum_buffer)))
            loss = ops.depend(loss, ops.assign(self.micro_step, ops.zeros_like(count)))
        else:
            loss = ops.depend(loss, ops.assign_add(self.accum_buffer, flat))
            loss = ops.depend(loss, ops.assign(self.micro_step, count))
        return loss

    def _update(self, loss, flat):
        """Mean over devices, 1/k and unscaling (one multiply), finite check, clipping, all on the
        flat vector; then back to one tensor per weight for the optimizer."""
        if self.reducer_flag:
            flat = self.flat_reducer((flat,))[0]
        if self.scaling:
            inv = ops.reciprocal(self.scaler.scale_value)
            flat = flat * (inv * self.inv_k if self.accumulating else inv)
            finite = ops.isfinite(flat).all()
            if self.loss_scale_type == "dynamic":
                loss = ops.depend(loss, self.scaler.adjust(finite))
        elif self.accumulating:
            flat = flat * self.inv_k
        flat = self._clip(flat)
        grads = _hyper(_unflat, self.weights, self._split_flat(flat))
        if not self.scaling:
            return ops.depend(loss, self.optimizer(grads))
        if finite:
            loss = ops.depend(loss, self.optimizer(grads))
        else:  # skipped: the LR index still moves on, the overflow is counted
            loss = ops.depend(loss, ops.assign_add(self.optimizer.global_step,
                                                   ops.ones_like(self.optimizer.global_step)))
            loss = ops.depend(loss, ops.assign_add(self.overflow_steps, ops.ones_like(self.overflow_steps)))
        return loss

    def _split_flat(self, flat):
        """The flat vector cut into one piece per weight (in ``SPLIT_CHUNK``-size chunks)."""
        if len(self.size_chunks) == 1:
            return _split(flat, self.sizes, 0)
        parts = _split(flat, self.chunk_totals, 0)
        pieces = ()
        for i in range(len(self.size_chunks)):
            pieces = pieces + _split(parts[i], self.size_chunks[i], 0)
        return pieces

    def _clip(self, flat):
        if self.clip_mode == "norm":  # min(1, clip_value / global norm), as clip_by_global_norm
            norm = ops.sqrt(ops.reduce_sum(flat * flat))
            return flat * ops.minimum(ops.ones_like(norm), self.clip_value / ops.maximum(norm, 1e-30))
        if self.clip_mode == "value":
            return ops.clip_by_value(flat, -self.clip_value, self.clip_value)
        return flat


__all__ = ["AMP_LEVELS", "DEVICE_AMP_LEVEL", "LOSS_SCALE_TYPES", "CLIP_MODES", "PREFIX", "TrainStep",
           "apply_amp", "resolve_amp_level", "runs_float32_only", "global_norm", "clip_by_global_norm", "flatten"]
