"""The pieces of MoViNet (``movinet.py``): activations, TF 'same' padding, the conv units with
the PyTorch port's module names, the causal depthwise convolution with its stream buffer, the
squeeze-excitation with its cumulative pool, the skip pool, and one bottleneck block.

Every stream-capable piece has one implementation, ``stream(x, state...) -> (y, new_state...)``;
the whole-clip forward of a causal network is the same code started from zero states, so the
clip and the frame-by-frame outputs cannot drift apart. Layout is (N, C, T, H, W); the weights
keep the port's 5-D (C_out, C_in / groups, kT, kH, kW) shapes (its ``2plus1d`` 4-D weights gain a
singleton axis when converted, ``movinet_weights.py``).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import Normal, initializer

from ..errors import UserError
from .layers import BatchNorm3d, ChannelwiseConv3d, PointwiseConv3d, SpatialConv3d, Swish
from .layers.drop_path import DropPath
from .kernels import pointwise_conv3d

BN_EPS = 1e-3        # TF / the port
BN_MOMENTUM = 0.99   # TF's convention, which MindSpore shares (torch's 0.1)
BN_OPS = 2           # FLOPs per BatchNorm output element (scale + shift; fvcore's convention, as X3D)

ACTIVATIONS = ("swish", "hard_swish", "relu")
GATES = ("sigmoid", "hard_sigmoid", "hard_sigmoid_relu6")


# ----------------------------------------------------------------------------------- activations
class HardSwish(nn.Cell):
    """x * relu6(x + 3) / 6 (TF's hard_swish, torch's nn.Hardswish), as MindSpore's one HSwish op:
    the same values as the four elementwise ops it replaces, in one pass (a stream step is
    dominated by per-op cost: its tensors are one frame)."""

    def construct(self, x):
        return ops.hardswish(x)


class HardSigmoid(nn.Cell):
    """clamp(0.2 x + 0.5, 0, 1): legacy Keras' hard sigmoid, the PyTorch port's SE gate."""

    def construct(self, x):
        return ops.clamp(0.2 * x + 0.5, 0.0, 1.0)


class HardSigmoidRelu6(nn.Cell):
    """relu6(x + 3) * 0.16667: the current TF Model Garden's hard sigmoid (not the port's)."""

    def construct(self, x):
        return ops.relu6(x + 3.0) * 0.16667


class Sigmoid(nn.Cell):
    def construct(self, x):
        return ops.sigmoid(x)


def make_activation(name: Optional[str], where: str = "model.activation") -> Optional[nn.Cell]:
    """The activation cell named ``name`` (None: none)."""
    if name is None:
        return None
    table = {"swish": Swish, "hard_swish": HardSwish, "relu": nn.ReLU, "sigmoid": Sigmoid,
             "hard_sigmoid": HardSigmoid, "hard_sigmoid_relu6": HardSigmoidRelu6}
    if name not in table:
        raise UserError(f"{where}: expected one of {', '.join(table)}, got {name!r}")
    return table[name]()


# ----------------------------------------------------------------------------------- padding
def same_pads(n: int, k: int, s: int) -> Tuple[int, int]:
    """TF 'same' padding (before, after) of a size-``n`` axis for kernel ``k``, stride ``s``: total
    max(k - ((n - 1) mod s + 1), 0), the odd pixel after."""
    total = max(k - ((n - 1) % s + 1), 0)
    return total // 2, total - total // 2


def same_out(n: int, s: int) -> int:
    """Output size of a TF 'same' convolution: ceil(n / s)."""
    return -(-n // s)


def pad_spatial_same(x, k: int, s: int):
    """Zero-pad H and W of (N, C, T, H, W) for a TF 'same' k x k convolution of stride s."""
    h, w = x.shape[3], x.shape[4]
    ph, pw = same_pads(h, k, s), same_pads(w, k, s)
    if ph == (0, 0) and pw == (0, 0):
        return x
    # zeros concatenated on, not ops.pad: MindSpore's CPU PadV3 was about a third of a stream
    # step's op time on these shapes, Concat is cheap (docs/performance.md, MoViNet stream latency)
    x = _zero_border(x, 4, pw)
    return _zero_border(x, 3, ph)


def _zero_border(x, axis: int, pads: Tuple[int, int]):
    """``x`` with pads[0] zeros before and pads[1] after along ``axis``."""
    parts = []
    for i, p in enumerate(pads):
        if p:
            shape = list(x.shape)
            shape[axis] = p
            parts.append((i, ops.zeros(tuple(shape), x.dtype)))
    if not parts:
        return x
    before = [z for i, z in parts if i == 0]
    after = [z for i, z in parts if i == 1]
    return ops.concat(tuple(before) + (x,) + tuple(after), axis=axis)


@ms.constexpr
def _pool_scale(h: int, w: int) -> Tensor:
    """(1, 1, Ho, Wo): 9 / (in-image taps) of each 3x3 stride-2 'same' window (TF's average pool
    does not count padding)."""
    def counts(n):
        lo, _ = same_pads(n, 3, 2)
        out = same_out(n, 2)
        return np.array([min(n, o * 2 - lo + 3) - max(0, o * 2 - lo) for o in range(out)], np.float32)
    c = np.outer(counts(h), counts(w))
    return Tensor((9.0 / c)[None, None].astype(np.float32))


def tf_avg_pool_3x3_s2(x):
    """The skip path's 1x3x3 stride 1x2x2 'same' average pool, padding not counted."""
    n, c, t, h, w = x.shape
    y = pad_spatial_same(x, 3, 2).reshape(n, c * t, h + sum(same_pads(h, 3, 2)), w + sum(same_pads(w, 3, 2)))
    y = ops.avg_pool2d(y, 3, 2) * _pool_scale(h, w)
    return y.reshape(n, c, t, y.shape[2], y.shape[3])


@ms.constexpr
def _frame_numbers(t: int) -> Tensor:
    """(1, 1, t, 1, 1): 1, 2, ..., t (a constant of the graph)."""
    return Tensor(np.arange(1, t + 1, dtype=np.float32).reshape(1, 1, t, 1, 1))


def causal_concat(buffer, x, keep: int):
    """(concat(buffer, x) on time, its last ``keep`` frames): the frames a causal temporal
    convolution reads and the buffer the next call starts from."""
    cat = ops.concat((buffer, x), axis=2)
    return cat, cat[:, :, cat.shape[2] - keep:]


# ----------------------------------------------------------------------------------- units
def make_norm(channels: int) -> BatchNorm3d:
    return BatchNorm3d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class Unit(nn.Cell):
    """conv3d -> [norm] -> [act]: the port's ``conv_1`` / ``conv_2`` (``Conv3DBNActivation``)."""

    def __init__(self, conv: nn.Cell, channels: int, *, norm: bool = True, act: Optional[str] = None) -> None:
        super().__init__()
        self.conv3d = conv
        self.norm = make_norm(channels) if norm else None
        self.act = make_activation(act)
        self.conv_bn_pairs = (("conv3d", "norm"),) if norm else ()
        self.bn_folded = False

    def construct(self, x):
        x = self.conv3d(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.act is not None:
            x = self.act(x)
        return x


class Pointwise(nn.Cell):
    """A 1x1x1 conv unit (expand, project, skip, head, SE, classifier) under the port's name ``conv_1``."""

    def __init__(self, dim_in: int, dim_out: int, *, norm: bool = True, act: Optional[str] = None,
                 bias: bool = False, weight_std: Optional[float] = None) -> None:
        super().__init__()
        conv = PointwiseConv3d(dim_in, dim_out, has_bias=bias)
        if weight_std is not None:
            conv.weight.set_data(initializer(Normal(weight_std), conv.weight.shape, ms.float32))
        self.conv_1 = Unit(conv, dim_out, norm=norm, act=act)
        self.dims = (dim_in, dim_out, norm)

    def construct(self, x):
        return self.conv_1(x)

    def flops(self, n_pos: int) -> int:
        dim_in, dim_out, norm = self.dims
        return n_pos * dim_out * (dim_in + (BN_OPS if norm else 0))


class Stem(nn.Cell):
    """conv1: 1x3x3 conv (stride 1x2x2, TF 'same') -> BN -> act."""

    def __init__(self, dim_in: int, dim_out: int, *, act: str, stem_impl: str) -> None:
        super().__init__()
        self.conv_1 = Unit(SpatialConv3d(dim_in, dim_out, (1, 3, 3), stride=(1, 2, 2), impl=stem_impl),
                           dim_out, act=act)
        self.dims = (dim_in, dim_out)

    def construct(self, x):
        return self.conv_1(pad_spatial_same(x, 3, 2))

    def flops(self, shape):
        dim_in, dim_out = self.dims
        _, t, h, w = shape
        ho, wo = same_out(h, 2), same_out(w, 2)
        return t * ho * wo * dim_out * (dim_in * 9 + BN_OPS), (dim_out, t, ho, wo)


class Depthwise(nn.Cell):
    """The block's ``deep`` conv: depthwise kt x k x k (``3d``) or k x k then kt x 1 x 1
    (``2plus1d``; a BN and an activation after each), TF 'same' in space; in time symmetric
    ((kt - 1) / 2 each side) or causal (kt - 1 frames of the buffer in front, nothing behind).

    ``stream(x, buffer) -> (y, buffer')`` for causal layers with kt > 1; ``buffer`` holds the last
    kt - 1 inputs of the temporal convolution: the expanded input (``3d``, before the strided
    conv) or the spatial conv's output (``2plus1d``)."""

    def __init__(self, channels: int, kt: int, k: int, stride: int, *, causal: bool, factorised: bool,
                 act: str, conv_impl: str) -> None:
        super().__init__()
        self.kt, self.k, self.s = kt, k, stride
        self.causal, self.factorised = causal, factorised
        self.buffered = causal and kt > 1
        ps = (k - 1) // 2 if stride == 1 else 0  # stride 1: 'same' is symmetric, the cell pads it
        pt = 0 if causal else (kt - 1) // 2
        st = (1, stride, stride)
        if factorised:
            self.conv_1 = Unit(ChannelwiseConv3d(channels, (1, k, k), stride=st, padding=(0, ps, ps), impl=conv_impl),
                               channels, act=act)
            self.conv_2 = (Unit(ChannelwiseConv3d(channels, (kt, 1, 1), padding=(pt, 0, 0), impl=conv_impl),
                                channels, act=act) if kt > 1 else None)
        else:
            self.conv_1 = Unit(ChannelwiseConv3d(channels, (kt, k, k), stride=st, padding=(pt, ps, ps),
                                                 impl=conv_impl), channels, act=act)
            self.conv_2 = None
        self.channels = channels

    def _spatial(self, x):
        return x if self.s == 1 else pad_spatial_same(x, self.k, self.s)

    def construct(self, x):
        if self.buffered:
            n, c, _, h, w = x.shape
            if self.factorised:
                h, w = same_out(h, self.s), same_out(w, self.s)
            return self.stream(x, ops.zeros((n, c, self.kt - 1, h, w), x.dtype))[0]
        x = self.conv_1(self._spatial(x))
        if self.conv_2 is not None:
            x = self.conv_2(x)
        return x

    def stream(self, x, buffer):
        keep = self.kt - 1
        if self.factorised:
            x, buffer = causal_concat(buffer, self.conv_1(self._spatial(x)), keep)
            return self.conv_2(x), buffer
        x, buffer = causal_concat(buffer, x, keep)
        return self.conv_1(self._spatial(x)), buffer

    def buffer_shape(self, batch: int, h: int, w: int) -> Tuple[int, ...]:
        """Stream buffer shape for an input of spatial size (h, w)."""
        if self.factorised:
            h, w = same_out(h, self.s), same_out(w, self.s)
        return (batch, self.channels, self.kt - 1, h, w)

    def flops(self, shape):
        c, t, h, w = shape
        ho, wo = same_out(h, self.s), same_out(w, self.s)
        n = t * ho * wo * c
        if self.factorised:
            return n * (self.k * self.k + BN_OPS) + (n * (self.kt + BN_OPS) if self.kt > 1 else 0)
        return n * (self.kt * self.k * self.k + BN_OPS)


class SqueezeExcitation(nn.Cell):
    """pool -> fc1 (1x1x1, bias, act) -> fc2 (1x1x1, bias, gate) -> x * gate.

    Non-causal (``3d``): one gate per clip from the mean over (T, H, W). Causal (``2plus3d``):
    a gate per frame from ``concat([cum, x_space])`` on channels, x_space[t] the spatial mean of
    frame t, cum[t] the mean of x_space over every frame seen so far (across calls: the stored
    sum and the global frame count)."""

    def __init__(self, channels: int, hidden: int, *, causal: bool, act: str, gate: str) -> None:
        super().__init__()
        self.causal = causal
        self.fc1 = Pointwise(channels * (2 if causal else 1), hidden, norm=False, act=act, bias=True)
        self.fc2 = Pointwise(hidden, channels, norm=False, act=gate, bias=True)
        self.dims = (channels, hidden)
        # a one-frame stream step in inference runs the whole SE as one C++ call where the
        # pointwise kernels run (CPU with a compiler) and its activations are the kernel's
        self.fused_step = (causal and self.fc1.conv_1.conv3d.impl == "cpp" and act in pointwise_conv3d.SE_ACTS
                           and gate in pointwise_conv3d.SE_GATES)
        if self.fused_step:
            self.se_op = pointwise_conv3d.se_stream_op(act, gate)
            self.se_cfg = pointwise_conv3d.se_stream_config(act, gate)

    def construct(self, x):
        if self.causal:
            return self.stream(x, ops.zeros((x.shape[0], x.shape[1], 1, 1, 1), x.dtype),
                               ops.zeros((1,), ms.int32))[0]
        return x * self.fc2(self.fc1(x.mean(axis=(2, 3, 4), keep_dims=True)))

    def stream(self, x, pool_sum, count):
        if self.fused_step and not self.training and x.shape[2] == 1 and x.dtype == ms.float32:
            return self.se_op(x, pool_sum, count, self.fc1.conv_1.conv3d.weight, self.fc1.conv_1.conv3d.bias,
                              self.fc2.conv_1.conv3d.weight, self.fc2.conv_1.conv3d.bias, self.se_cfg)
        space = x.mean(axis=(3, 4), keep_dims=True)                     # (N, C, T, 1, 1)
        t = space.shape[2]
        if t == 1:  # one frame per step (the usual stream): no cumulative sum, no frame table
            csum = space + pool_sum
            frames = count.astype(x.dtype) + 1.0
        else:
            csum = ops.cumsum(space, axis=2) + pool_sum
            frames = _frame_numbers(t) + count.astype(x.dtype)             # frames seen at each t
        gate = self.fc2(self.fc1(ops.concat((csum / frames, space), axis=1)))
        return x * gate, csum[:, :, t - 1:]

    def flops(self, t: int) -> int:
        c, hidden = self.dims
        pos = t if self.causal else 1
        return pos * hidden * (c * (2 if self.causal else 1) + c)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Nearest multiple of ``divisor`` (at least ``divisor``), + divisor if that loses > 10 %."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * value else out


class Block(nn.Cell):
    """One MoViNet bottleneck (the port's ``BasicBneck``, TF's ``MovinetBlock``)::

        x -> expand 1x1x1 (BN, act) -> deep (BN, act) -> se -> project 1x1x1 (BN) -> * alpha
          -> [stochastic depth] -> + skip(x)

    skip: identity when channels and size are kept, else ``res`` = [avg pool 3x3 /2 'same'] +
    1x1x1 conv + BN. ``alpha`` is ReZero's scalar (init 0)."""

    def __init__(self, *, dim_in: int, dim_out: int, expand: int, kt: int, k: int, stride: int,
                 causal: bool, factorised: bool, act: str, gate: str, drop_path: float, conv_impl: str) -> None:
        super().__init__()
        self.has_expand = expand != dim_out
        if self.has_expand:
            self.expand = Pointwise(dim_in, expand, act=act)
        self.deep = Depthwise(expand, kt, k, stride, causal=causal, factorised=factorised, act=act,
                              conv_impl=conv_impl)
        self.se = SqueezeExcitation(expand, make_divisible(expand * 0.25 * (2 if causal else 1)),
                                    causal=causal, act=act, gate=gate)
        self.project = Pointwise(expand, dim_out)
        self.has_res = not (stride == 1 and dim_in == dim_out)
        if self.has_res:
            # the port's names: res.0 = the parameter-free pool (strided only), then the projection
            # (res.1; res.0 without the pool, as A3/A5's b3_l0)
            self.res = nn.SequentialCell(([SkipPool()] if stride == 2 else []) + [Pointwise(dim_in, dim_out)])
        self.alpha = Parameter(Tensor(0.0, ms.float32), name="alpha")
        self.drop_path = DropPath(drop_path)  # stochastic depth (training only)
        self.causal = causal
        self.buffered = self.deep.buffered
        self.dims = (dim_in, dim_out, expand, stride)

    def _skip(self, x):
        return self.res(x) if self.has_res else x

    def _residual(self, skip, y):
        return skip + self.drop_path(y * self.alpha)

    def construct(self, x):
        y = self.expand(x) if self.has_expand else x
        y = self.project(self.se(self.deep(y)))
        return self._residual(self._skip(x), y)

    def stream(self, x, buffer, pool_sum, count):
        """One step of a causal block: ``(y, buffer', pool_sum')`` (``buffer`` unused when kt = 1)."""
        y = self.expand(x) if self.has_expand else x
        if self.buffered:
            y, buffer = self.deep.stream(y, buffer)
        else:
            y = self.deep(y)
        y, pool_sum = self.se.stream(y, pool_sum, count)
        return self._residual(self._skip(x), self.project(y)), buffer, pool_sum

    def flops(self, shape):
        dim_in, dim_out, expand, stride = self.dims
        _, t, h, w = shape
        ho, wo = same_out(h, stride), same_out(w, stride)
        macs = self.expand.flops(t * h * w) if self.has_expand else 0
        macs += self.deep.flops((expand, t, h, w)) + self.se.flops(t) + self.project.flops(t * ho * wo)
        if self.has_res:
            macs += self.res[len(self.res) - 1].flops(t * ho * wo)
        return macs, (dim_out, t, ho, wo)


class SkipPool(nn.Cell):
    """res.0: the 1x3x3 stride 1x2x2 'same' average pool of a strided skip."""

    def construct(self, x):
        return tf_avg_pool_3x3_s2(x)


__all__ = ["ACTIVATIONS", "GATES", "Block", "Depthwise", "HardSigmoid", "HardSigmoidRelu6", "HardSwish",
           "Pointwise", "SqueezeExcitation", "Stem", "make_activation", "make_divisible", "same_out",
           "same_pads", "BN_OPS"]
