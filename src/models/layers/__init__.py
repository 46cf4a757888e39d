"""The building layers of every model, by concern; this package re-exports the public names.

MindSpore's CPU ``Conv3d(group=C)`` runs C separate convolutions, so a literal X3D cannot even
compile a training step on CPU, and its CPU Conv3D is slow for every kernel larger than 1x1x1.
The layers keep the reference parameter shapes (so checkpoints move freely between devices,
formulations and frameworks) and pick a formulation per device::

    policy.py        which formulation runs where: the names (one vocabulary, deprecated aliases
                     in one table), the per-device rules (resolve_impl, resolve_grouped_impl),
                     use_impl(...) (a context manager) and set_default_impl (process-wide)
    shapes.py        shared shape helpers: triple, convolution output sizes, strided positions
    conv.py          Conv3d: dense / grouped convolution (native, split, blockdiag, gemm, cpp, direct)
    spatial.py       SpatialConv3d: the X3D stem's (1, kH, kW) convolution (+ im2col)
    channelwise.py   ChannelwiseConv3d: depthwise convolution (native, banded, cpp)
    pointwise.py     PointwiseConv3d: 1x1x1 convolution with the fused C++ inference pass (cpp)
    norm.py          BatchNorm3d, use_norm (model.norm: bn | syncbn)
    activation.py    Swish
    drop_path.py     DropPath (stochastic depth), drop_path_rates (linear over depth)
    pool.py          global_avg_pool, avg_pool_head
    params.py        kaiming_fan_out, the folded-BatchNorm bias of the convolutions

The C++ kernels and their ``ops.Custom`` bindings live in ``src/models/kernels/`` (a binding
module beside each ``.cc``).
"""
from .activation import Swish
from .channelwise import ChannelwiseConv3d
from .conv import Conv3d
from .drop_path import DropPath, drop_path_rates
from .params import kaiming_fan_out
from .norm import NORMS, BatchNorm3d, sync_group, use_norm
from .pointwise import PointwiseConv3d
from .policy import (CHANNELWISE_IMPLS, DEPRECATED_ALIASES, DIRECT_MAX_IN, GROUPED_IMPLS, IMPLS, POINTWISE_IMPLS,
                     SPATIAL_IMPLS, accepted_names, canonical_impl, default_impl, device_target, resolve_grouped_impl,
                     resolve_impl, set_default_impl, use_impl)
from .pool import avg_pool_head, global_avg_pool
from .shapes import IntOr3, Triple, ceil_div, conv_out_dims, conv_out_size
from .spatial import SpatialConv3d

__all__ = ["BatchNorm3d", "ChannelwiseConv3d", "Conv3d", "PointwiseConv3d", "SpatialConv3d", "Swish",
           "DropPath", "drop_path_rates",
           "avg_pool_head", "global_avg_pool", "kaiming_fan_out", "ceil_div", "conv_out_size", "conv_out_dims",
           "IntOr3", "Triple", "IMPLS", "DEPRECATED_ALIASES", "CHANNELWISE_IMPLS", "SPATIAL_IMPLS", "GROUPED_IMPLS",
           "POINTWISE_IMPLS", "DIRECT_MAX_IN", "accepted_names", "canonical_impl", "default_impl", "device_target",
           "resolve_grouped_impl", "resolve_impl", "set_default_impl", "use_impl", "NORMS", "sync_group", "use_norm"]
