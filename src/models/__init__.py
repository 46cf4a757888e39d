"""The model zoo: importing this registers every model in ``MODELS`` (see ``base.py`` for the
contract each follows and ``docs/models.md`` for adding one)."""
from typing import Any

from ..registry import MODELS, build_from_cfg
from .base import (PretrainedCfg, VideoClassifier, count_params, register_model,  # noqa: F401
                   resolve_pretrained_cfg)
from .fold import fold_batchnorm  # noqa: F401
from . import state_map, x3d_weights  # noqa: F401,E402  (register the published weight layouts)
from .layers import BatchNorm3d, ChannelwiseConv3d, SpatialConv3d, set_default_impl, use_impl  # noqa: F401
from .x3d import X3D, create_x3d, round_width  # noqa: F401
from . import e3d_squeezenet, e3d_resnet  # noqa: F401  (registers)
from . import e3d_mobilenet, e3d_mobilenetv2, e3d_shufflenet, e3d_shufflenetv2  # noqa: F401  (registers)
from . import movinet, movinet_weights  # noqa: F401  (registers MoViNet and its port's weight layout)


def build_model(model_cfg: Any, **runtime_args: Any) -> VideoClassifier:
    """Build the network described by a config's ``model`` section."""
    return build_from_cfg(model_cfg, MODELS, where="model", **runtime_args)


def list_models() -> list:
    """Registered model names (each has a default record, ``resolve_pretrained_cfg(name)``)."""
    return list(MODELS)
