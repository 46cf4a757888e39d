"""Device policy: which formulation each kind of layer runs where, in one module, one vocabulary.

Every layer keeps the reference parameter shapes; only how it computes changes. ``impl="auto"``
(the default of every layer and config key) is resolved here when the layer is built:

=============  ==================  =====================================================
kind           layer               formulations
=============  ==================  =====================================================
channelwise    ChannelwiseConv3d   ``native``, ``banded``, ``cpp``
spatial        SpatialConv3d       ``native``, ``im2col``, ``gemm``, ``direct``
grouped        Conv3d              ``native``, ``split``, ``blockdiag``, ``gemm``, ``cpp``, ``direct``
pointwise      PointwiseConv3d     ``native``, ``cpp``
=============  ==================  =====================================================

``cpp`` is always the C++ kernel written for that layer: the depthwise kernel for
``ChannelwiseConv3d`` and for depthwise shapes of ``Conv3d``, the fused pointwise kernel for
``PointwiseConv3d``. ``gemm`` (C++ vol2col + one product) and ``direct`` (C++ direct convolution)
are C++ too, named by their algorithm. ``banded`` is the pure-MindSpore channelwise formulation
(a Conv2D over (N, C*T, H, W) with a banded temporal weight). Older spellings are accepted as
deprecated aliases (:data:`DEPRECATED_ALIASES`, one ``DeprecationWarning`` each); ``fold`` now
means only BatchNorm folding (``src/models/fold.py``).

Choosing: the innermost :func:`use_impl` block wins, then :func:`set_default_impl`'s process-wide
choice, then the device rule below. An explicit choice a device cannot run is replaced by one it
can (``cpp`` without a compiler -> ``banded``; ``direct`` off CPU -> ``gemm`` -> ``native``, ...).

    with use_impl(channelwise="banded", spatial="native"):   # e.g. the portable MINDIR export
        net = build_model(cfg.model)
"""
from __future__ import annotations

import contextlib
import contextvars
import types
import warnings
from typing import Dict, Iterator, Mapping, Optional, Sequence, Set, Tuple

import mindspore as ms

from .. import kernels
from .shapes import Triple

IMPLS: Dict[str, Tuple[str, ...]] = {
    "channelwise": ("native", "banded", "cpp"),
    "spatial": ("native", "im2col", "gemm", "direct"),
    "grouped": ("native", "split", "blockdiag", "gemm", "cpp", "direct"),
    "pointwise": ("native", "cpp"),
}
# (kind, old spelling) -> the name it stands for now; accepted for one release
DEPRECATED_ALIASES: Dict[Tuple[str, str], str] = {
    ("channelwise", "custom"): "cpp",     # the C++ kernel was "custom" in ChannelwiseConv3d ...
    ("channelwise", "fold"): "banded",    # "fold" is BatchNorm folding only
    ("grouped", "channelwise"): "cpp",    # ... and "channelwise" in Conv3d
    ("pointwise", "custom"): "cpp",
}
CHANNELWISE_IMPLS = IMPLS["channelwise"]
SPATIAL_IMPLS = IMPLS["spatial"]
GROUPED_IMPLS = IMPLS["grouped"]
POINTWISE_IMPLS = IMPLS["pointwise"]
DIRECT_MAX_IN = 4  # input channels up to which a dense conv runs as the direct C++ kernel (stems)

_PROCESS_DEFAULTS: Dict[str, str] = {}  # set_default_impl's choices (only through it)
_SCOPED: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "layer_impls", default=types.MappingProxyType({}))
_WARNED_ALIASES: Set[Tuple[str, str]] = set()


def device_target() -> str:
    """The device MindSpore will run on ('CPU', 'GPU' or 'Ascend')."""
    try:
        return ms.get_context("device_target")
    except Exception:  # pragma: no cover - very old/odd contexts
        return "CPU"


def accepted_names(kind: str) -> Tuple[str, ...]:
    """Every spelling ``kind`` accepts: ``auto``, its formulations, then the deprecated aliases
    (the config schema's choices for ``model.conv_impl`` / ``model.stem_impl``)."""
    return ("auto",) + IMPLS[kind] + tuple(old for (k, old) in DEPRECATED_ALIASES if k == kind)


def canonical_impl(impl: str, kind: str) -> str:
    """``impl`` in today's vocabulary: a deprecated alias is mapped (one ``DeprecationWarning``
    per alias and process), an unknown name raises ValueError."""
    if kind not in IMPLS:
        raise ValueError(f"unknown layer kind '{kind}', known: {', '.join(IMPLS)}")
    if impl == "auto" or impl in IMPLS[kind]:
        return impl
    new = DEPRECATED_ALIASES.get((kind, impl))
    if new is None:
        old = [o for (k, o) in DEPRECATED_ALIASES if k == kind]
        extra = f" (deprecated: {', '.join(old)})" if old else ""
        raise ValueError(f"{kind} conv impl '{impl}' is not one of: auto, {', '.join(IMPLS[kind])}{extra}")
    if (kind, impl) not in _WARNED_ALIASES:
        _WARNED_ALIASES.add((kind, impl))
        warnings.warn(f"{kind} conv impl '{impl}' is deprecated; use '{new}'", DeprecationWarning, stacklevel=3)
    return new


def _canonical_choices(impls: Mapping[str, Optional[str]]) -> Dict[str, str]:
    unknown = [k for k in impls if k not in IMPLS]
    if unknown:
        raise TypeError(f"unknown layer kind(s) {', '.join(unknown)}; known: {', '.join(IMPLS)}")
    return {kind: canonical_impl(impl, kind) for kind, impl in impls.items() if impl is not None}


@contextlib.contextmanager
def use_impl(**impls: Optional[str]) -> Iterator[None]:
    """Build the layers created inside the block with these formulations (``channelwise=``,
    ``spatial=``, ``grouped=``, ``pointwise=``; None leaves a kind as it is, ``"auto"`` restores
    the device rule). Scoped to the block (and the thread or task running it); nests."""
    wanted = _canonical_choices(impls)
    token = _SCOPED.set(types.MappingProxyType({**_SCOPED.get(), **wanted}))
    try:
        yield
    finally:
        _SCOPED.reset(token)


def set_default_impl(channelwise: Optional[str] = None, spatial: Optional[str] = None,
                     grouped: Optional[str] = None, pointwise: Optional[str] = None) -> None:
    """Process-wide choice for layers built from now on ('auto' restores the device rule); for
    scripts. Prefer :func:`use_impl`, which restores the previous choice when its block ends.

    ``grouped`` applies to ``Conv3d``; on Ascend a non-depthwise grouped convolution still
    never gets ``native`` (see :func:`resolve_grouped_impl`). ``pointwise`` applies to
    ``PointwiseConv3d`` in inference networks.
    """
    wanted = _canonical_choices(dict(channelwise=channelwise, spatial=spatial, grouped=grouped,
                                     pointwise=pointwise))
    for kind, impl in wanted.items():
        if impl == "auto":
            _PROCESS_DEFAULTS.pop(kind, None)
        else:
            _PROCESS_DEFAULTS[kind] = impl


def default_impl(kind: str) -> str:
    """What ``auto`` stands for right now: the innermost :func:`use_impl` choice, else the
    :func:`set_default_impl` choice, else ``"auto"`` (the device rule)."""
    scoped = _SCOPED.get()
    if kind in scoped:
        return scoped[kind]
    return _PROCESS_DEFAULTS.get(kind, "auto")


def resolve_impl(impl: str, kind: str, *, stride: Optional[Sequence[int]] = None) -> str:
    """The formulation a ``kind`` layer built now runs ('auto' -> the default for this device).

    ``stride`` (channelwise only): ``banded`` cannot stride in time, so such a layer runs
    ``native`` instead (the MobileNet / ShuffleNet stage entries, when ``banded`` is the default).
    """
    impl = canonical_impl(impl, kind)
    if impl == "auto":
        impl = default_impl(kind)
    if impl == "auto":
        on_cpu = device_target() == "CPU"
        if kind == "channelwise":
            impl = ("cpp" if kernels.library_path("channelwise") else "banded") if on_cpu else "native"
        elif kind == "pointwise":
            impl = "cpp" if on_cpu else "native"
        else:
            # MindSpore's CPU Conv3D with a 3-channel 1x3x3 kernel lands on oneDNN's generic path on
            # some CPUs (tens of times slower than on others): the C++ direct convolution (or the
            # vol2col + 1x1x1 product) is fast on all of them (see resolve_grouped_impl)
            impl = "direct" if on_cpu else "native"
    if kind == "pointwise":
        if impl == "cpp" and (device_target() != "CPU" or kernels.library_path("pointwise") is None):
            impl = "native"  # a CPU kernel (no compiler: kernels.library_path logged one warning)
        return impl
    if impl == "cpp" and kernels.library_path("channelwise") is None:
        impl = "banded"  # no compiler / build failed: kernels.library_path logged one warning
    if impl == "banded" and stride is not None and stride[0] != 1:
        impl = "native"  # the banded temporal weight has one row per output frame at stride 1
    if impl == "direct" and (device_target() != "CPU" or kernels.library_path("direct") is None
                             or kernels.library_path("vol2col") is None):
        impl = "gemm"  # a CPU kernel (no compiler: kernels.library_path logged one warning)
    if impl == "gemm" and (device_target() != "CPU" or kernels.library_path("vol2col") is None):
        impl = "native"
    return impl


def resolve_grouped_impl(impl: str, *, dim_in: int, dim_out: int, groups: int,
                         kernel_size: Sequence[int], stride: Sequence[int] = (1, 1, 1)) -> str:
    """The ``Conv3d`` formulation for this device and shape ('auto' -> the rule below).

    * GPU: ``native`` (cuDNN runs grouped convolutions directly).
    * Ascend: ``native`` only for depthwise (``dim_in == dim_out == groups``), the one grouped
      form its Conv3D accepts; otherwise ``blockdiag`` for up to 4 groups (one dense kernel at
      <= 4x the arithmetic) and ``split`` beyond (32 groups would be 32x the arithmetic).
      An explicit or default ``native`` that Ascend cannot run is replaced by that choice.
    * CPU: MindSpore's Conv3D is fast only for 1x1x1 kernels (oneDNN's matrix-product path);
      every larger kernel lands on a slow generic path (tens to hundreds of times slower than
      torch, even with 3 input channels), and a grouped Conv3D runs group by group on it. So:
      depthwise -> ``cpp`` (the C++ depthwise kernel); 1x1x1 ungrouped -> ``native``; 1x1x1
      grouped -> ``split`` (the fastest with ``gemm``'s batched MatMul, without needing a
      compiler); a larger kernel over at most ``DIRECT_MAX_IN`` input channels (the stems) ->
      ``direct`` (C++ direct convolution: no patch matrix, which for a 7x7x7 stem is
      C_in*343 x N*L floats); any other larger kernel -> ``gemm`` (C++ vol2col + one product).
      Without a compiler larger kernels stay ``native`` (ungrouped) or ``split`` (grouped):
      slow, but exact. (A sum of per-tap 1x1x1 convolutions over strided views was ~10x faster
      than ``native`` in graph mode, but MindSpore's PyNative StridedSliceGrad fails on it, so it
      is not offered.)
    """
    given = impl
    impl = canonical_impl(impl, "grouped")
    depthwise = dim_in == dim_out == groups
    if impl == "cpp" and not depthwise:
        raise ValueError(f"grouped conv impl '{given}' needs a depthwise convolution "
                         f"(dim_in == dim_out == groups), got {dim_in} -> {dim_out} with groups={groups}")
    if impl == "auto":
        impl = default_impl("grouped")
    if impl in ("split", "blockdiag") and groups == 1:
        impl = "native"  # one group: both are the plain convolution (and a 1-way split breaks graph export)
    device = device_target()
    if impl == "cpp" and (not depthwise or device != "CPU" or kernels.library_path("channelwise") is None):
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
        return "cpp" if kernels.library_path("channelwise") else "native"
    return _cpu_grouped_rule(dim_in, groups, tuple(kernel_size))


def _cpu_grouped_rule(dim_in: int, groups: int, kernel: Triple) -> str:
    if kernel == (1, 1, 1):
        return "native" if groups == 1 else "split"
    if groups == 1 and dim_in <= DIRECT_MAX_IN and kernels.library_path("direct") and kernels.library_path("vol2col"):
        return "direct"
    if kernels.library_path("vol2col"):
        return "gemm"
    return "native" if groups == 1 else "split"


def subsamples(kernel: Triple, stride: Triple, padding: Triple) -> bool:
    """Whether a convolution runs as a slice (``shapes.strided_positions``) then a stride-1 Conv3D:
    a strided 1x1x1 one on CPU, where MindSpore's strided Conv3D lands on oneDNN's slow generic
    path on some CPUs (X3D-XS's four shortcuts took more than half of its batch-8 forward time)."""
    return (kernel == (1, 1, 1) and padding == (0, 0, 0) and stride != (1, 1, 1)
            and device_target() == "CPU")


__all__ = ["IMPLS", "DEPRECATED_ALIASES", "CHANNELWISE_IMPLS", "SPATIAL_IMPLS", "GROUPED_IMPLS", "POINTWISE_IMPLS",
           "DIRECT_MAX_IN", "device_target", "accepted_names", "canonical_impl", "use_impl", "set_default_impl",
           "default_impl", "resolve_impl", "resolve_grouped_impl", "subsamples"]
