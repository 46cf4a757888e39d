"""Models and layers (importing this registers x3d_xs .. x3d_l in ``MODELS``)."""
from .layers import ChannelwiseConv3d, SpatialConv3d, BatchNorm3d, set_default_impl  # noqa: F401
from .fold import fold_batchnorm  # noqa: F401
from .x3d import X3D, create_x3d, count_params, round_width  # noqa: F401

from typing import Any

from ..registry import MODELS, build_from_cfg


def build_model(model_cfg: Any, **runtime_args: Any) -> X3D:
    """Build the network described by a config's ``model`` section."""
    return build_from_cfg(model_cfg, MODELS, where="model", **runtime_args)
