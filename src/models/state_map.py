"""Map a reference PyTorch state dict onto a zoo network whose names mirror the reference's.

The Efficient-3DCNNs ports keep the reference's module names, so a checkpoint converts by renaming
only (no reshaping: torch Conv3d/Linear and MindSpore Conv3D/Dense share weight layouts)::

    module.layer1.0.bn1.running_var  --strip "module."-->  layer1.0.bn1.running_var
        --BN leaf (the net has layer1.0.bn1.gamma)-->      layer1.0.bn1.moving_variance
    *.num_batches_tracked                                  dropped

then every key is checked against ``net.parameters_and_names()``: a checkpoint of another
architecture or width is refused with one line naming the mismatched keys.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Dict, List

import numpy as np
from mindspore import nn

from ..errors import UserError
from .weights import BN_NAMES, WeightLayout, register_layout

PREFIX = "module."
MAX_LISTED = 6


def _shape(shape) -> str:
    dims = [str(int(d)) for d in shape]
    return "(" + ",".join(dims) + ("," if len(dims) == 1 else "") + ")"


def describe(net: nn.Cell) -> str:
    """The network's one-line description for messages (builders set ``net.arch``)."""
    return str(getattr(net, "arch", type(net).__name__))


def map_reference_state(state: Mapping, net: nn.Cell, *, source: str) -> Dict[str, np.ndarray]:
    """Rename ``state`` (reference key -> array) to ``net``'s parameter names and check it fits.

    Raises ``UserError`` (one line starting with ``source``) listing unmapped source keys, missing
    target parameters and shape mismatches (both shapes) when anything does not fit.
    Floating arrays come back as float32 (the networks' dtype).
    """
    targets = {name: tuple(p.shape) for name, p in net.parameters_and_names()}
    mapped: Dict[str, np.ndarray] = {}
    origin: Dict[str, str] = {}
    extra: List[str] = []
    for key, value in state.items():
        name = key[len(PREFIX):] if key.startswith(PREFIX) else key
        prefix, _, leaf = name.rpartition(".")
        if leaf == "num_batches_tracked":
            continue
        if prefix and f"{prefix}.gamma" in targets and leaf in BN_NAMES:
            name = f"{prefix}.{BN_NAMES[leaf]}"
        if name not in targets:
            extra.append(key[len(PREFIX):] if key.startswith(PREFIX) else key)
            continue
        arr = np.asarray(value)
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float32, copy=False)
        mapped[name], origin[name] = arr, key[len(PREFIX):] if key.startswith(PREFIX) else key
    problems: List[str] = []
    for name, arr in mapped.items():
        if tuple(arr.shape) != targets[name]:
            problems.append(f"{origin[name]} {_shape(arr.shape)} vs {_shape(targets[name])}")
    problems += [f"unexpected {k}" for k in extra]
    problems += [f"missing {name}" for name in targets if name not in mapped]
    if problems:
        listed = ", ".join(problems[:MAX_LISTED])
        more = f" and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise UserError(f"{source}: {len(problems)} keys do not fit {describe(net)}: {listed}{more}")
    return mapped


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor (duck-typed: src/ never imports torch)
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _is_array(value: Any) -> bool:
    return hasattr(value, "detach") or isinstance(value, np.ndarray)


def load_reference_checkpoint_dict(obj: Any, *, source: str = "checkpoint") -> Dict[str, np.ndarray]:
    """The state dict (key -> numpy array) of an already-loaded reference checkpoint object.

    Accepts the reference's ``torch.save`` dict (``state_dict`` plus ``epoch``, ``arch``,
    ``optimizer``, ``best_prec1``, which are ignored) or a bare state dict.
    """
    if not isinstance(obj, Mapping):
        raise UserError(f"{source}: expected a checkpoint dict or a state dict, got {type(obj).__name__}")
    if "state_dict" in obj:
        state = obj["state_dict"]
        if not isinstance(state, Mapping):
            raise UserError(f"{source}: 'state_dict' is a {type(state).__name__}, expected a mapping of tensors")
    else:
        state = obj
    bad = [str(k) for k, v in state.items() if not _is_array(v)]
    if bad:
        listed = ", ".join(bad[:MAX_LISTED]) + (f" and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else "")
        raise UserError(f"{source}: not a state dict ({len(bad)} entries are not tensors: {listed}); "
                        f"expected tensors or a dict with 'state_dict'")
    if not state:
        raise UserError(f"{source}: the state dict is empty")
    return {str(k): _to_numpy(v) for k, v in state.items()}


__all__ = ["map_reference_state", "load_reference_checkpoint_dict", "describe"]


# ----------------------------------------------------------------------------------- layout
# The reference's ``arch`` entry (its --model string) per registered builder.
REFERENCE_ARCH = {"e3d_mobilenet": "mobilenet", "e3d_mobilenetv2": "mobilenetv2", "e3d_shufflenet": "shufflenet",
                  "e3d_shufflenetv2": "shufflenetv2", "e3d_squeezenet": "squeezenet", "e3d_resnet": "resnet",
                  "e3d_resnext": "resnext"}


class Efficient3DLayout(WeightLayout):
    """okankop/Efficient-3DCNNs ``.pth`` files: ``{epoch, arch, state_dict, optimizer, best_prec1}``
    with DataParallel's ``module.`` prefix; our networks mirror its module names."""

    name = "efficient3dcnns"
    model_prefixes = ("e3d_",)
    describe = "module.features.* / module.conv1.* / module.layer1.* keys of the Efficient-3DCNNs models"

    def detect(self, keys) -> bool:
        return any(k.split(".", 1)[0] in ("features", "conv1", "conv_last", "classifier", "layer1", "fc")
                   for k in keys)

    def convert(self, state, net, *, where):
        params = map_reference_state(state, net, source=where)
        dropped = sum(1 for k in state if k.endswith("num_batches_tracked"))
        return params, {"read": len(state), "dropped": dropped}

    def check_extra(self, extra, net, *, where):
        arch = extra.get("arch")
        model_type = getattr(net, "model_name", "")
        expected = REFERENCE_ARCH.get(str(model_type))
        if isinstance(arch, str) and expected is not None and arch.lower() != expected:
            raise UserError(f"{where}: the checkpoint is a '{arch}' (its 'arch' entry) but the config builds "
                            f"'{expected}'; use the matching e3d_{arch} config")


register_layout(Efficient3DLayout())
