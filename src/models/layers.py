"""X3D building layers with device-aware implementations.

MindSpore's CPU ``Conv3d(group=C)`` runs C separate convolutions, so a literal X3D cannot even
compile a training step on CPU. The layers here keep the reference parameter shapes (so
checkpoints move freely between devices and frameworks) and pick a formulation per device:

* ``ChannelwiseConv3d`` - weight (C, 1, kT, kH, kW). ``native``: grouped Conv3D (GPU/Ascend).
  ``fold``: one grouped Conv2D over (N, C*T, H, W) whose (T_out x T_in) banded weight is built
  in-graph from the (C, 1, kT, kH, kW) parameter (exact; the CPU fallback without a compiler).
  ``custom``: C++ forward and backward kernels (OpenMP + SIMD) run through
  ``ops.Custom(func_type="aot")``; built with the machine's g++ on first use and cached
  (``src/models/kernels``). The CPU default when the library builds, else ``fold``.
* ``SpatialConv3d`` - a (1, kH, kW) convolution with few input channels (the stem's 3 -> 24).
  ``native``: Conv3D (the default everywhere: on a 2-core CPU with 2 kernel threads it measured
  12 ms forward / 96 ms forward+backward against im2col's 166 / 210 ms for a 4x3x4x160x160 clip).
  ``im2col``: kH*kW strided slices stacked on the channel axis, then one 1x1x1 convolution.

``impl="auto"`` resolves from the device selected with ``mindspore.set_device`` when the layer
is built; ``set_default_impl`` or the ``impl`` argument override it.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import HeNormal, initializer

from . import kernels

Triple = Tuple[int, int, int]
IntOr3 = Union[int, Sequence[int]]

CHANNELWISE_IMPLS = ("native", "fold", "custom")
SPATIAL_IMPLS = ("native", "im2col", "gemm", "direct")
GROUPED_IMPLS = ("native", "split", "blockdiag", "gemm", "channelwise", "direct")
POINTWISE_IMPLS = ("native", "custom")
DIRECT_MAX_IN = 4  # input channels up to which a dense conv runs as the direct C++ kernel (stems)
_KNOWN_IMPLS = {"channelwise": CHANNELWISE_IMPLS, "spatial": SPATIAL_IMPLS, "grouped": GROUPED_IMPLS,
                "pointwise": POINTWISE_IMPLS}
_DEFAULT_IMPL = {"channelwise": "auto", "spatial": "auto", "grouped": "auto", "pointwise": "auto"}


def _triple(v: IntOr3) -> Triple:
    if isinstance(v, int):
        return (v, v, v)
    v = tuple(int(i) for i in v)
    if len(v) != 3:
        raise ValueError(f"expected an int or 3 ints, got {v}")
    return v  # type: ignore[return-value]


def device_target() -> str:
    """The device MindSpore will run on ('CPU', 'GPU' or 'Ascend')."""
    try:
        return ms.get_context("device_target")
    except Exception:  # pragma: no cover - very old/odd contexts
        return "CPU"


def set_default_impl(channelwise: Optional[str] = None, spatial: Optional[str] = None,
                     grouped: Optional[str] = None, pointwise: Optional[str] = None) -> None:
    """Override the ``auto`` choice for layers built from now on ('auto' restores it).

    ``grouped`` applies to :class:`Conv3d`; on Ascend a non-depthwise grouped convolution still
    never gets ``native`` (see :func:`resolve_grouped_impl`). ``pointwise`` applies to
    :class:`PointwiseConv3d` in inference networks.
    """
    for kind, impl in (("channelwise", channelwise), ("spatial", spatial), ("grouped", grouped),
                       ("pointwise", pointwise)):
        if impl is not None:
            _check_impl(impl, _KNOWN_IMPLS[kind], kind)
            _DEFAULT_IMPL[kind] = impl


def _check_impl(impl: str, known: Sequence[str], what: str) -> None:
    if impl != "auto" and impl not in known:
        raise ValueError(f"{what} conv impl '{impl}' is not one of: auto, {', '.join(known)}")


def resolve_impl(impl: str, kind: str) -> str:
    """'auto' -> the default for this kind of layer on the current device."""
    _check_impl(impl, _KNOWN_IMPLS[kind], kind)
    if impl == "auto":
        impl = _DEFAULT_IMPL[kind]
    if impl == "auto":
        on_cpu = device_target() == "CPU"
        if kind == "channelwise":
            impl = ("custom" if kernels.library_path("channelwise") else "fold") if on_cpu else "native"
        elif kind == "pointwise":
            impl = "custom" if on_cpu else "native"
        else:
            # MindSpore's CPU Conv3D with a 3-channel 1x3x3 kernel lands on oneDNN's generic path on
            # some CPUs (tens of times slower than on others): the C++ direct convolution (or the
            # vol2col + 1x1x1 product) is fast on all of them (see resolve_grouped_impl)
            impl = "direct" if on_cpu else "native"
    if kind == "pointwise":
        if impl == "custom" and (device_target() != "CPU" or kernels.library_path("pointwise") is None):
            impl = "native"  # a CPU kernel (no compiler: kernels.library_path logged one warning)
        return impl
    if impl == "custom" and kernels.library_path("channelwise") is None:
        impl = "fold"  # no compiler / build failed: kernels.library_path logged one warning
    if impl == "direct" and (device_target() != "CPU" or kernels.library_path("direct") is None
                             or kernels.library_path("vol2col") is None):
        impl = "gemm"  # a CPU kernel (no compiler: kernels.library_path logged one warning)
    if impl == "gemm" and (device_target() != "CPU" or kernels.library_path("vol2col") is None):
        impl = "native"
    return impl


def resolve_grouped_impl(impl: str, *, dim_in: int, dim_out: int, groups: int,
                         kernel_size: Sequence[int], stride: Sequence[int] = (1, 1, 1)) -> str:
    """The :class:`Conv3d` formulation for this device and shape ('auto' -> the rule below).

    * GPU: ``native`` (cuDNN runs grouped convolutions directly).
    * Ascend: ``native`` only for depthwise (``dim_in == dim_out == groups``), the one grouped
      form its Conv3D accepts; otherwise ``blockdiag`` for up to 4 groups (one dense kernel at
      <= 4x the arithmetic) and ``split`` beyond (32 groups would be 32x the arithmetic).
      An explicit or default ``native`` that Ascend cannot run is replaced by that choice.
    * CPU: MindSpore's Conv3D is fast only for 1x1x1 kernels (oneDNN's matrix-product path);
      every larger kernel lands on a slow generic path (tens to hundreds of times slower than
      torch, even with 3 input channels), and a grouped Conv3D runs group by group on it. So:
      depthwise -> ``channelwise`` (the C++ kernel); 1x1x1 ungrouped -> ``native``; 1x1x1
      grouped -> ``split`` (the fastest with ``gemm``'s batched MatMul, without needing a
      compiler); a larger kernel over at most ``DIRECT_MAX_IN`` input channels (the stems) ->
      ``direct`` (C++ direct convolution: no patch matrix, which for a 7x7x7 stem is
      C_in*343 x N*L floats); any other larger kernel -> ``gemm`` (C++ vol2col + one product).
      Without a compiler
      larger kernels stay ``native`` (ungrouped) or ``split`` (grouped): slow, but exact. (A sum
      of per-tap 1x1x1 convolutions over strided views was ~10x faster than ``native`` in graph
      mode, but MindSpore's PyNative StridedSliceGrad fails on it, so it is not offered.)
    """
    _check_impl(impl, GROUPED_IMPLS, "grouped")
    depthwise = dim_in == dim_out == groups
    if impl == "channelwise" and not depthwise:
        raise ValueError(f"grouped conv impl 'channelwise' needs a depthwise convolution "
                         f"(dim_in == dim_out == groups), got {dim_in} -> {dim_out} with groups={groups}")
    if impl == "auto":
        impl = _DEFAULT_IMPL["grouped"]
    if impl in ("split", "blockdiag") and groups == 1:
        impl = "native"  # one group: both are the plain convolution (and a 1-way split breaks graph export)
    device = device_target()
    if impl == "channelwise" and (not depthwise or device != "CPU" or kernels.library_path("channelwise") is None):
        impl = "auto"  # a CPU kernel, for depthwise convolutions only (no compiler: one warning was logged)
    if impl == "direct" and (groups != 1 or device != "CPU" or kernels.library_path("direct") is None
                             or kernels.library_path("vol2col") is None):
        impl = "auto"  # a CPU kernel for dense convolutions (its input gradient uses vol2col's adjoint)
    if impl == "gemm" and device != "CPU":
        impl = "auto"  # vol2col is a CPU kernel
    if impl == "gemm" and kernels.library_path("vol2col") is None:
        impl = "auto"  # no compiler: kernels.library_path logged one warning
    if impl != "auto" and not (impl == "native" and device == "Ascend" and groups > 1 and not depthwise):
        return impl
    if device == "GPU" or (device == "Ascend" and (depthwise or groups == 1)):
        return "native"
    if device == "Ascend":
        return "blockdiag" if groups <= 4 else "split"
    if depthwise:
        return "channelwise" if kernels.library_path("channelwise") else "native"
    return _cpu_grouped_rule(dim_in, dim_out, groups, tuple(kernel_size), tuple(stride))


def _cpu_grouped_rule(dim_in: int, dim_out: int, groups: int, kernel: Triple, stride: Triple) -> str:
    if kernel == (1, 1, 1):
        return "native" if groups == 1 else "split"
    if groups == 1 and dim_in <= DIRECT_MAX_IN and kernels.library_path("direct") and kernels.library_path("vol2col"):
        return "direct"
    if kernels.library_path("vol2col"):
        return "gemm"
    return "native" if groups == 1 else "split"


def kaiming_fan_out(shape: Sequence[int]) -> Tensor:
    """Kaiming-normal (fan_out, ReLU gain) init as the references use for every conv."""
    return initializer(HeNormal(mode="fan_out", nonlinearity="relu"), tuple(shape), ms.float32)


class BatchNorm3d(nn.BatchNorm2d):
    """BatchNorm over (N, C, T, H, W) with reference defaults (eps 1e-5, torch momentum 0.1).

    A subclass rather than ``nn.BatchNorm3d`` so parameter names stay flat
    (``bn.gamma``, not ``bn.bn2d.gamma``).
    """

    def __init__(self, num_features: int, *, eps: float = 1e-5, momentum: float = 0.9,
                 zero_init: bool = False) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum,
                         gamma_init="zeros" if zero_init else "ones")

    def construct(self, x):
        n, c, t, h, w = x.shape
        y = super().construct(x.reshape(n, c, t * h, w))
        return y.reshape(n, c, t, h, w)


class Swish(nn.Cell):
    """x * sigmoid(x) (used once per bottleneck, after the channelwise conv)."""

    def construct(self, x):
        return x * ops.sigmoid(x)


def _subsamples(kernel: Triple, stride: Triple, padding: Triple) -> bool:
    """Whether a convolution runs as a slice (:func:`_strided_positions`) then a stride-1 Conv3D: a
    strided 1x1x1 one on CPU, where MindSpore's strided Conv3D lands on oneDNN's slow generic
    path on some CPUs (X3D-XS's four shortcuts took more than half of its batch-8 forward time)."""
    return (kernel == (1, 1, 1) and padding == (0, 0, 0) and stride != (1, 1, 1)
            and device_target() == "CPU")


@ms.constexpr
def _pynative() -> bool:
    """True when run in PyNative mode (a constant, False, when compiled into a graph)."""
    return ms.get_context("mode") == ms.PYNATIVE_MODE


def _strided_positions(x, stride: Triple):
    """The positions a 1x1x1 convolution with ``stride`` reads: x[:, :, ::sT, ::sH, ::sW]. In
    PyNative mode as one Gather per strided axis: there the stepped slice's gradient
    (StridedSliceGrad) fails; in a graph the slice is kept (its forward + backward measured
    about 18x faster than the Gathers')."""
    if _pynative():
        for i in range(3):
            if stride[i] > 1:
                x = ops.gather(x, ops.arange(0, x.shape[2 + i], stride[i]), 2 + i)
        return x
    return x[:, :, ::stride[0], ::stride[1], ::stride[2]]


class PointwiseConv3d(nn.Cell):
    """1x1x1 Conv3d, weight (C_out, C_in, 1, 1, 1), optional bias (C_out,).

    ``native``: Conv3D (+ BiasAdd), oneDNN's matrix product; what training always runs.
    ``custom`` (the CPU default): in an inference network (eval mode, with a bias, e.g. a folded
    BatchNorm's shift) one C++ pass (``kernels/pointwise_conv3d.cc``) computes the product and
    the bias and, through :meth:`fused`, what an X3D block does around the convolution: a Swish
    (after a squeeze-excitation gate) on its input, a ReLU or the residual sum + ReLU on its
    output. As separate ops each of those reads and writes the whole activation again.
    ``set_bias`` lets ``fold_batchnorm`` give the layer a bias after construction.

    A strided layer on CPU takes every s-th position first (:func:`_subsamples`; the C++ kernel
    reads them itself).
    """

    def __init__(self, dim_in: int, dim_out: int, *, stride: IntOr3 = 1, has_bias: bool = False,
                 impl: str = "auto") -> None:
        super().__init__()
        self.dim_in, self.dim_out = dim_in, dim_out
        self.stride = _triple(stride)
        self.weight = Parameter(kaiming_fan_out((dim_out, dim_in, 1, 1, 1)), name="weight")
        self.bias = Parameter(initializer("zeros", (dim_out,), ms.float32), name="bias") if has_bias else None
        self.subsample = _subsamples((1, 1, 1), self.stride, (0, 0, 0))
        self.conv = ops.Conv3D(dim_out, 1, mode=1, pad_mode="valid",
                               stride=1 if self.subsample else self.stride)
        self.relu = ops.ReLU()
        self.impl = resolve_impl(impl, "pointwise") if self.stride == (1, 1, 1) or self.subsample else "native"
        if self.impl == "custom":
            # one op and configuration tensor per epilogue (0 none, 1 ReLU, 2 residual + ReLU) and
            # prologue (0 none, 1 Swish, 2 gate + Swish); the configuration: stride, epilogue, prologue
            self.kernels = tuple(tuple(_custom_pointwise(self.stride, e, p) for p in range(3)) for e in range(3))
            self.kernel_cfgs = tuple(tuple(Tensor(np.array(self.stride + (e, p), np.int64)) for p in range(3))
                                     for e in range(3))
            self.unused = Tensor(np.zeros((1,), np.float32))  # for the kernel's residual / gate slot

    @property
    def has_bias(self) -> bool:
        return self.bias is not None

    def set_bias(self, bias: np.ndarray) -> None:
        """Set (or add) the per-channel bias (C_out,): the shift of a BatchNorm folded into this conv."""
        bias = np.asarray(bias, np.float32)
        if bias.shape != (self.dim_out,):
            raise ValueError(f"PointwiseConv3d bias must have shape ({self.dim_out},), got {bias.shape}")
        if self.bias is None:
            self.bias = Parameter(Tensor(bias), name="bias")
        else:
            self.bias.set_data(Tensor(bias))

    def construct(self, x):
        return self.fused(x)

    def fused(self, x, relu: bool = False, residual=None, swish_input: bool = False, gate=None):
        """[Swish(x [* gate])] -> conv + bias [+ residual] [-> ReLU].

        ``gate`` (N, C_in, 1, 1, 1) scales the input before the Swish (only with
        ``swish_input``); a residual is summed only with ``relu`` (the C++ kernel's forms).
        """
        if gate is not None and not swish_input:
            raise ValueError("PointwiseConv3d.fused: a gate is only applied before a Swish")
        if residual is not None and not relu:
            raise ValueError("PointwiseConv3d.fused: a residual is only summed before a ReLU")
        if self.impl == "custom" and self.bias is not None and not self.training:
            epilogue = 2 if residual is not None else (1 if relu else 0)
            prologue = 2 if gate is not None else (1 if swish_input else 0)
            r = self.unused if residual is None else residual
            s = self.unused if gate is None else gate
            return self.kernels[epilogue][prologue](x, self.weight, self.bias, r, s,
                                                    self.kernel_cfgs[epilogue][prologue])
        if gate is not None:
            x = x * gate
        if swish_input:
            x = x * ops.sigmoid(x)
        if self.subsample:
            x = _strided_positions(x, self.stride)
        y = self.conv(x, self.weight)
        if self.bias is not None:
            y = ops.bias_add(y, self.bias)
        if residual is not None:
            y = y + residual
        if relu:
            y = self.relu(y)
        return y


_POINTWISE_OPS = {}


def _custom_pointwise(stride: Triple, epilogue: int, prologue: int) -> ops.Custom:
    """The C++ pointwise kernel (``X3dPointwise``) in one (epilogue, prologue) form, shared by the
    layers with this stride. Its bprop (MindSpore ops) makes an inference network differentiable
    too (saliency maps, attacks); training itself runs the native layer."""
    key = (stride, epilogue, prologue)
    if key in _POINTWISE_OPS:
        return _POINTWISE_OPS[key]
    strided = stride != (1, 1, 1)

    def out_shape(xs, ws, *_rest):
        return [xs[0], ws[0]] + [(xs[2 + i] - 1) // stride[i] + 1 for i in range(3)]

    def bprop(x, w, b, r, s, cfg, out, dout):
        xs = _strided_positions(x, stride) if strided else x
        v = xs * s if prologue == 2 else xs
        sig = ops.sigmoid(v)
        u = v * sig if prologue else v
        dz = dout * (out > 0).astype(dout.dtype) if epilogue else dout  # ReLU: out > 0 where it passed
        n, co, c = dz.shape[0], dz.shape[1], u.shape[1]
        dz2 = dz.reshape(n, co, -1)
        dw = ops.matmul(dz2, u.reshape(n, c, -1).transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
        du = ops.matmul(w.reshape(co, c).T, dz2).reshape(u.shape)
        dv = du * (sig * (1.0 + v * (1.0 - sig))) if prologue else du
        dxs = dv * s if prologue == 2 else dv
        ds = (dv * xs).sum(axis=(2, 3, 4), keepdims=True).reshape(s.shape) if prologue == 2 else ops.zeros_like(s)
        dx = _scatter_strided(dxs, x.shape, stride) if strided else dxs
        dr = dz if epilogue == 2 else ops.zeros_like(r)
        return dx, dw, dz.sum(axis=(0, 2, 3, 4)), dr, ds, ops.zeros_like(cfg)

    op = ops.Custom(f"{kernels.library_path('pointwise')}:X3dPointwise", out_shape=out_shape,
                    out_dtype=_first_dtype, func_type="aot", bprop=bprop)
    op.add_prim_attr("x3d_geometry", ",".join(map(str, stride + (epilogue, prologue))))  # see _custom_channelwise
    _POINTWISE_OPS[key] = op
    return op


def _scatter_strided(t, shape, stride: Triple):
    """Zeros of ``shape`` (N, C, T, H, W) holding ``t`` at every stride-th position (the adjoint of
    ``x[:, :, ::sT, ::sH, ::sW]``): per axis, a zero block after each element, then cut to size."""
    for i in range(3):
        step, axis = stride[i], 2 + i
        if step > 1:
            e = ops.expand_dims(t, axis + 1)
            pad = list(e.shape)
            pad[axis + 1] = step - 1
            t = ops.concat((e, ops.zeros(tuple(pad), t.dtype)), axis + 1)
            merged = list(t.shape[:axis]) + [t.shape[axis] * step] + list(t.shape[axis + 2:])
            t = t.reshape(tuple(merged))
            t = ops.narrow(t, axis, 0, shape[axis])
    return t


class Conv3d(nn.Cell):
    """General 3D convolution, weight (C_out, C_in / groups, kT, kH, kW), optional bias (C_out,).

    The dense and grouped convolutions of the Efficient-3DCNNs family (3x3x3 stems, ResNet
    convolutions, ShuffleNet's grouped 1x1x1, ResNeXt's grouped 3x3x3). The parameter has the
    reference shape for every ``impl``, so checkpoints move between devices:

    * ``native`` - one Conv3D with ``group`` (cuDNN on GPU). MindSpore's CPU kernel runs the groups
      one after another, and Ascend accepts group > 1 only for depthwise convolutions.
    * ``split`` - the input split into ``groups`` channel slices, one ungrouped Conv3D per slice
      with its slice of the weight, outputs concatenated.
    * ``blockdiag`` - one dense Conv3D whose block-diagonal (C_out, C_in, k...) weight is built in
      the graph from the parameter (tiled along C_in, times a constant 0/1 mask): exact, one
      kernel call, ``groups`` times the multiply-adds.
    * ``gemm`` - (CPU) C++ vol2col gathers the patches into (C_in*taps, N, L), then one product
      reads the weight once: a 1x1x1 Conv3D when ungrouped, a MatMul batched over the groups
      otherwise (exact arithmetic). Grouped 1x1x1 convolutions need no gathering.
    * ``channelwise`` - (CPU) depthwise only (``dim_in == dim_out == groups``): the C++ kernel
      of :class:`ChannelwiseConv3d`.
    * ``direct`` - (CPU) ungrouped only: the C++ direct convolution (output channels in vector
      registers, no patch matrix; weight gradient in C++, input gradient via vol2col's adjoint).
      Fastest for few input channels (stems).

    ``impl="auto"`` is resolved by :func:`resolve_grouped_impl` from the device and the shape.
    ``set_bias`` lets ``fold_batchnorm`` give it a bias. ``init``: ``kaiming_fan_out`` (the
    references' ResNet/SqueezeNet/MobileNetV2 init) or ``torch_default`` (PyTorch's default Conv3d
    init: kaiming-uniform with a = sqrt(5)).
    """

    def __init__(self, dim_in: int, dim_out: int, kernel_size: IntOr3, *, stride: IntOr3 = 1,
                 padding: IntOr3 = 0, groups: int = 1, has_bias: bool = False,
                 init: str = "kaiming_fan_out", impl: str = "auto") -> None:
        super().__init__()
        if groups < 1 or dim_in % groups or dim_out % groups:
            raise ValueError(f"Conv3d: channels {dim_in} -> {dim_out} are not divisible by groups={groups}")
        self.dim_in, self.dim_out, self.groups = dim_in, dim_out, groups
        self.kernel_size = _triple(kernel_size)
        self.stride = _triple(stride)
        self.padding = _triple(padding)
        self.impl = resolve_grouped_impl(impl, dim_in=dim_in, dim_out=dim_out, groups=groups,
                                         kernel_size=self.kernel_size, stride=self.stride)
        shape = (dim_out, dim_in // groups) + self.kernel_size
        fan_in = (dim_in // groups) * int(np.prod(self.kernel_size))
        if init == "kaiming_fan_out":
            w = kaiming_fan_out(shape)
        elif init == "torch_default":
            bound = 1.0 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) bound = sqrt(6/((1+5)*fan_in))
            w = Tensor(np.random.uniform(-bound, bound, shape).astype(np.float32))
        else:
            raise ValueError(f"Conv3d init must be 'kaiming_fan_out' or 'torch_default', got '{init}'")
        self.weight = Parameter(w, name="weight")
        self.bias = None
        if has_bias:
            bound = 1.0 / math.sqrt(fan_in)
            self.bias = Parameter(Tensor(np.random.uniform(-bound, bound, (dim_out,)).astype(np.float32)),
                                  name="bias")
        pt, ph, pw = self.padding
        pad = (pt, pt, ph, ph, pw, pw)
        # a strided 1x1x1 convolution (ResNet's shortcut B): on CPU a slice, then stride 1
        self.subsample = (self.impl in ("native", "split", "blockdiag")
                          and _subsamples(self.kernel_size, self.stride, self.padding))
        conv_stride = (1, 1, 1) if self.subsample else self.stride
        if self.impl == "channelwise":
            self.conv = _custom_channelwise(self.stride, self.padding)
            self.geometry = Tensor(np.array(self.stride + self.padding, np.int64))
        elif self.impl == "direct":
            self.conv = _custom_direct(self.kernel_size, self.stride, self.padding)
            self.geometry = Tensor(np.array(self.kernel_size + self.stride + self.padding, np.int64))
        elif self.impl == "gemm":
            self.pointwise = self.kernel_size == (1, 1, 1) and self.stride == (1, 1, 1) and self.padding == (0, 0, 0)
            self.conv = ops.Conv3D(dim_out, 1, mode=1, pad_mode="valid")  # the product when groups == 1
            if not self.pointwise:
                self.vol2col = _custom_vol2col(self.kernel_size, self.stride, self.padding)
                self.geometry = Tensor(np.array(self.kernel_size + self.stride + self.padding, np.int64))
        elif self.impl == "native":
            self.conv = ops.Conv3D(dim_out, self.kernel_size, mode=1, pad_mode="pad", pad=pad,
                                   stride=conv_stride, group=groups)
        else:
            out_per_conv = dim_out // groups if self.impl == "split" else dim_out
            self.conv = ops.Conv3D(out_per_conv, self.kernel_size, mode=1, pad_mode="pad", pad=pad,
                                   stride=conv_stride)
        if self.impl == "blockdiag" and groups > 1:
            cin_g, cout_g = dim_in // groups, dim_out // groups
            mask = (np.arange(dim_out)[:, None] // cout_g == np.arange(dim_in)[None, :] // cin_g)
            self.block_mask = Tensor(mask.astype(np.float32).reshape(dim_out, dim_in, 1, 1, 1))

    def set_bias(self, bias: np.ndarray) -> None:
        """Set the per-channel bias (C_out,): the shift of a BatchNorm folded into this conv."""
        bias = np.asarray(bias, np.float32)
        if bias.shape != (self.dim_out,):
            raise ValueError(f"Conv3d bias must have shape ({self.dim_out},), got {bias.shape}")
        if self.bias is None:
            self.bias = Parameter(Tensor(bias), name="bias")
        else:
            self.bias.set_data(Tensor(bias))
        if self.impl == "channelwise" and not hasattr(self, "conv_bias"):
            self.conv_bias = _custom_channelwise(self.stride, self.padding, with_bias=True)

    def construct(self, x):
        if self.impl == "channelwise":
            if self.bias is None:
                return self.conv(x, self.weight, self.geometry)
            return self.conv_bias(x, self.weight, self.bias, self.geometry)  # bias added in C++
        if self.subsample:
            x = _strided_positions(x, self.stride)
        if self.impl == "native":
            y = self.conv(x, self.weight)
        elif self.impl == "direct":
            y = self.conv(x, self.weight, self.geometry)
        elif self.impl == "blockdiag":
            y = self.conv(x, self._dense_weight())
        elif self.impl == "gemm":
            y = self._gemm(x)
        else:
            # static slices, not ops.split: a graph with a dynamic batch (export) cannot size a Split
            ci, co = self.dim_in // self.groups, self.dim_out // self.groups
            y = ops.cat([self.conv(x[:, i * ci:(i + 1) * ci], self.weight[i * co:(i + 1) * co])
                         for i in range(self.groups)], axis=1)
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, 1, 1, 1)
        return y

    def _dense_weight(self):
        """(C_out, C_in, k...): the parameter itself, or its block-diagonal expansion when grouped."""
        if self.groups == 1:
            return self.weight
        return ops.tile(self.weight, (1, self.groups, 1, 1, 1)) * self.block_mask

    def _gemm(self, x):
        """vol2col (C++) into (C_in*taps, N, L), then one product that reads the weight once: a
        1x1x1 Conv3D over the patch rows when ungrouped (oneDNN's fast path), else a MatMul batched
        over the groups. Exact arithmetic, no loop over groups. Grouped 1x1x1 convolutions skip
        vol2col: a MatMul batched over samples and groups."""
        n, c, t, h, w = x.shape
        kt, kh, kw = self.kernel_size
        g, cout = self.groups, self.dim_out
        to = (t + 2 * self.padding[0] - kt) // self.stride[0] + 1
        ho = (h + 2 * self.padding[1] - kh) // self.stride[1] + 1
        wo = (w + 2 * self.padding[2] - kw) // self.stride[2] + 1
        k = (c // g) * kt * kh * kw
        if self.pointwise:
            if g == 1:
                return self.conv(x, self.weight)
            y = ops.matmul(self.weight.reshape(g, cout // g, k), x.reshape(n, g, k, t * h * w))
            return y.reshape(n, cout, t, h, w)
        cols = self.vol2col(x, self.geometry)  # (C_in*taps, N, L)
        length = n * to * ho * wo
        if g == 1:
            # positions on the last axis: with them on the first spatial axis oneDNN's weight gradient
            # took a slow path (hundreds of times slower)
            y = self.conv(cols.reshape(1, k, 1, 1, length), self.weight.reshape(cout, k, 1, 1, 1))
        else:
            y = ops.matmul(self.weight.reshape(g, cout // g, k), cols.reshape(g, k, length))
        return y.reshape(cout, n, to * ho * wo).transpose(1, 0, 2).reshape(n, cout, to, ho, wo)


class ChannelwiseConv3d(nn.Cell):
    """Depthwise (groups = channels) 3D convolution, weight (C, 1, kT, kH, kW), no bias.

    Temporal stride must be 1 for ``fold`` (X3D never strides in time); ``custom`` takes any
    kernel size, stride and padding.
    """

    def __init__(self, channels: int, kernel_size: IntOr3, *, stride: IntOr3 = 1,
                 padding: IntOr3 = 0, impl: str = "auto") -> None:
        super().__init__()
        self.channels = channels
        self.kernel_size = _triple(kernel_size)
        self.stride = _triple(stride)
        self.padding = _triple(padding)
        self.impl = resolve_impl(impl, "channelwise")
        if self.impl == "fold" and self.stride[0] != 1:
            raise ValueError(f"ChannelwiseConv3d impl 'fold' needs temporal stride 1, got {self.stride}")
        kt, kh, kw = self.kernel_size
        self.weight = Parameter(kaiming_fan_out((channels, 1, kt, kh, kw)), name="weight")
        pt, ph, pw = self.padding
        if self.impl == "native":
            self.conv = ops.Conv3D(channels, self.kernel_size, mode=1, pad_mode="pad",
                                   pad=(pt, pt, ph, ph, pw, pw), stride=self.stride, group=channels)
        elif self.impl == "custom":
            self.conv = _custom_channelwise(self.stride, self.padding)
            self.geometry = Tensor(np.array(self.stride + self.padding, np.int64))
        self.bias = None  # set by ``set_bias`` when a following BatchNorm is folded in

    def set_bias(self, bias: np.ndarray) -> None:
        """Add a per-channel bias (C,): the shift of a BatchNorm folded into this convolution."""
        bias = np.asarray(bias, np.float32)
        if bias.shape != (self.channels,):
            raise ValueError(f"ChannelwiseConv3d bias must have shape ({self.channels},), got {bias.shape}")
        self.bias = Parameter(Tensor(bias), name="bias")
        if self.impl == "custom":
            self.conv_bias = _custom_channelwise(self.stride, self.padding, with_bias=True)

    def construct(self, x):
        if self.impl == "custom":
            if self.bias is None:
                return self.conv(x, self.weight, self.geometry)
            return self.conv_bias(x, self.weight, self.bias, self.geometry)  # bias added in C++
        y = self.conv(x, self.weight) if self.impl == "native" else self._fold(x)
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, 1, 1, 1)
        return y

    def _fold(self, x):
        n, c, t, h, w = x.shape
        kt, kh, kw = self.kernel_size
        t_out = t + 2 * self.padding[0] - kt + 1
        band = _band_tensor(t, kt, self.padding[0])
        # (T_out*T_in, kT) @ (C, kT, kH*kW) -> (C, T_out*T_in, kH*kW): the banded 2D weight
        wk = ops.matmul(band, self.weight.reshape(c, kt, kh * kw)).reshape(c * t_out, t, kh, kw)
        ph, pw = self.padding[1], self.padding[2]
        y = ops.conv2d(x.reshape(n, c * t, h, w), wk, None, (self.stride[1], self.stride[2]),
                       "pad", (ph, pw), 1, c)
        return y.reshape(n, c, t_out, y.shape[2], y.shape[3])


def _custom_channelwise(stride: Triple, padding: Triple, *, with_bias: bool = False) -> ops.Custom:
    """The forward ``ops.Custom`` of the C++ channelwise kernel, with its C++ backward as bprop.

    ``with_bias``: the (x, w, bias, cfg) variant that adds a folded BatchNorm's shift in the same pass.
    """
    lib = kernels.library_path("channelwise")
    geometry = ",".join(str(v) for v in stride + padding)

    def out_shape(xs, ws, *_rest):
        dims = [(xs[2 + i] + 2 * padding[i] - ws[2 + i]) // stride[i] + 1 for i in range(3)]
        if min(dims) < 1:
            raise ValueError(f"ChannelwiseConv3d: input {tuple(xs)} is smaller than kernel {tuple(ws[2:])} "
                             f"with padding {padding}")
        return [xs[0], xs[1]] + dims

    backward = ops.Custom(f"{lib}:X3dCwBackward", out_shape=lambda xs, ws, _c, _g: (xs, ws),
                          out_dtype=lambda xt, wt, _c, _g: (xt, wt), func_type="aot")
    # PyNative caches shape inference per primitive name + attributes + input shapes: make the
    # geometry an attribute so two convolutions with equal inputs but other strides don't collide
    backward.add_prim_attr("x3d_geometry", geometry)
    if with_bias:
        def bprop_bias(x, w, b, cfg, out, dout):
            dx, dw = backward(x, w, cfg, dout)
            return dx, dw, dout.sum(axis=(0, 2, 3, 4)), ops.zeros_like(cfg)

        forward = ops.Custom(f"{lib}:X3dCwForwardBias", out_shape=out_shape,
                             out_dtype=lambda xt, *_rest: xt, func_type="aot", bprop=bprop_bias)
    else:
        def bprop(x, w, cfg, out, dout):
            dx, dw = backward(x, w, cfg, dout)
            return dx, dw, ops.zeros_like(cfg)

        forward = ops.Custom(f"{lib}:X3dCwForward", out_shape=out_shape, out_dtype=lambda xt, *_rest: xt,
                             func_type="aot", bprop=bprop)
    forward.add_prim_attr("x3d_geometry", geometry)
    return forward


def _first_shape(xs, *_rest):
    """Custom-op shape inference: the output has the first input's shape."""
    return list(xs)


def _first_dtype(xt, *_rest):
    """Custom-op type inference: the output has the first input's dtype."""
    return xt


def _custom_col2vol(geometry: str) -> ops.Custom:
    """``ops.Custom`` summing patch gradients back onto the input (C++ ``X3dCol2Vol``): the adjoint
    of vol2col, used by the bprops of ``gemm`` and ``direct``."""
    op = ops.Custom(f"{kernels.library_path('vol2col')}:X3dCol2Vol", out_shape=_first_shape,
                    out_dtype=_first_dtype, func_type="aot")
    op.add_prim_attr("x3d_geometry", geometry)  # see _custom_channelwise: PyNative shape cache
    return op


def _custom_vol2col(kernel: Triple, stride: Triple, padding: Triple) -> ops.Custom:
    """``ops.Custom`` gathering convolution patches (C++ ``X3dVol2Col``), its adjoint as bprop."""
    lib = kernels.library_path("vol2col")
    geometry = ",".join(str(v) for v in kernel + stride + padding)
    taps = kernel[0] * kernel[1] * kernel[2]

    def out_shape(xs, _cs):
        dims = [(xs[2 + i] + 2 * padding[i] - kernel[i]) // stride[i] + 1 for i in range(3)]
        if min(dims) < 1:
            raise ValueError(f"Conv3d: input {tuple(xs)} is smaller than kernel {kernel} with padding {padding}")
        return [xs[1] * taps, xs[0], dims[0] * dims[1] * dims[2]]

    backward = _custom_col2vol(geometry)

    def bprop(x, cfg, out, dout):
        return backward(x, cfg, dout), ops.zeros_like(cfg)

    forward = ops.Custom(f"{lib}:X3dVol2Col", out_shape=out_shape, out_dtype=_first_dtype,
                         func_type="aot", bprop=bprop)
    forward.add_prim_attr("x3d_geometry", geometry)
    return forward


def _custom_direct(kernel: Triple, stride: Triple, padding: Triple) -> ops.Custom:
    """``ops.Custom`` dense convolution computed directly (C++ ``X3dDirectConv``: no patch matrix),
    for few input channels; bprop: the C++ weight gradient and, for the input, the adjoint of the
    patch gathering applied to W^T dy (only built into the graph when the input needs a gradient)."""
    lib = kernels.library_path("direct")
    geometry = ",".join(str(v) for v in kernel + stride + padding)
    taps = kernel[0] * kernel[1] * kernel[2]

    def out_shape(xs, ws, _cs):
        dims = [(xs[2 + i] + 2 * padding[i] - kernel[i]) // stride[i] + 1 for i in range(3)]
        if min(dims) < 1:
            raise ValueError(f"Conv3d: input {tuple(xs)} is smaller than kernel {kernel} with padding {padding}")
        return [xs[0], ws[0]] + dims

    def grad_w_shape(xs, dys, _cs):
        return [dys[1], xs[1]] + list(kernel)

    grad_w = ops.Custom(f"{lib}:X3dDirectConvGradW", out_shape=grad_w_shape, out_dtype=_first_dtype,
                        func_type="aot")
    grad_w.add_prim_attr("x3d_geometry", geometry)  # see _custom_channelwise: PyNative shape cache
    col2vol = _custom_col2vol(geometry)

    def bprop(x, w, cfg, out, dout):
        n, c = x.shape[0], x.shape[1]
        co = w.shape[0]
        dy = dout.reshape(n, co, -1)
        dcols = ops.matmul(w.reshape(co, c * taps).T, dy.transpose(1, 0, 2).reshape(co, -1))
        dx = col2vol(x, cfg, dcols.reshape(c * taps, n, dy.shape[2]))
        return dx, grad_w(x, dout, cfg), ops.zeros_like(cfg)

    forward = ops.Custom(f"{lib}:X3dDirectConv", out_shape=out_shape, out_dtype=_first_dtype,
                         func_type="aot", bprop=bprop)
    forward.add_prim_attr("x3d_geometry", geometry)
    return forward


@ms.constexpr
def _band_tensor(t_in: int, kt: int, pt: int) -> Tensor:
    t_out = t_in + 2 * pt - kt + 1
    band = np.zeros((t_out, t_in, kt), np.float32)
    for o in range(t_out):
        for k in range(kt):
            i = o + k - pt
            if 0 <= i < t_in:
                band[o, i, k] = 1.0
    return Tensor(band.reshape(t_out * t_in, kt))


class SpatialConv3d(Conv3d):
    """A (1, kH, kW) Conv3d with weight (C_out, C_in, 1, kH, kW), no bias (the X3D stem's conv_xy).

    ``impl``: ``direct`` (CPU default: the C++ direct convolution of :class:`Conv3d`), ``gemm``
    (C++ vol2col + one product), ``native`` (one Conv3D; the default elsewhere), ``im2col`` (pure MindSpore: the 9 shifted views
    stacked as channels, then a 1x1x1 Conv3D; for CPUs without a compiler).
    """

    def __init__(self, dim_in: int, dim_out: int, kernel_size: Sequence[int], *,
                 stride: Sequence[int] = (1, 1, 1), padding: Sequence[int] = (0, 0, 0),
                 impl: str = "auto") -> None:
        kernel_size, stride, padding = _triple(kernel_size), _triple(stride), _triple(padding)
        if kernel_size[0] != 1 or stride[0] != 1 or padding[0] != 0:
            raise ValueError(f"SpatialConv3d is for (1, kH, kW) kernels without temporal stride/padding, "
                             f"got kernel {kernel_size}, stride {stride}, padding {padding}")
        impl = resolve_impl(impl, "spatial")
        super().__init__(dim_in, dim_out, kernel_size, stride=stride, padding=padding,
                         impl="native" if impl == "im2col" else impl)
        self.impl = impl

    def construct(self, x):
        if self.impl != "im2col":
            return super().construct(x)
        n, c, t, h, w = x.shape
        _, kh, kw = self.kernel_size
        _, sh, sw = self.stride
        _, ph, pw = self.padding
        ho = (h + 2 * ph - kh) // sh + 1
        wo = (w + 2 * pw - kw) // sw + 1
        xp = ops.pad(x, (pw, pw, ph, ph))
        cols = []
        for i in range(kh):
            for j in range(kw):
                cols.append(xp[:, :, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw])
        # (N, C, kH*kW, T, Ho, Wo) -> (N, C*kH*kW, T, Ho, Wo): channel index c*kH*kW + i*kW + j
        cols = ops.stack(cols, axis=2).reshape(n, c * kh * kw, t, ho, wo)
        w2 = self.weight.reshape(self.dim_out, c * kh * kw, 1, 1, 1)
        return ops.conv3d(cols, w2)


def global_avg_pool(x):
    """Mean over (T, H, W) with kept dims, as one MatMul with a constant column.

    On CPU (2 threads) this measured 1.4-7x faster than ReduceMean over the three axes.
    """
    n, c, t, h, w = x.shape
    col = ops.full((t * h * w, 1), 1.0 / (t * h * w), dtype=x.dtype)
    return ops.matmul(x.reshape(n * c, t * h * w), col).reshape(n, c, 1, 1, 1)


def avg_pool_head(x, kernel: Triple):
    """Average over windows of ``kernel`` (clipped to the input) with stride 1."""
    _, _, t, h, w = x.shape
    kt, kh, kw = min(kernel[0], t), min(kernel[1], h), min(kernel[2], w)
    if (kt, kh, kw) == (t, h, w):
        return global_avg_pool(x)
    return ops.avg_pool3d(x, (kt, kh, kw), 1)


def ceil_div(a: int, b: int) -> int:
    return int(math.ceil(a / b))
