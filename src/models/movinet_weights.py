"""The PyTorch port's (Atze00/MoViNet-pytorch) state-dict layout, mapped onto ``movinet.py``.

Our parameter names are the port's, so a state dict converts by renaming and reshaping only::

    blocks.b1_l0.deep.conv_1.conv3d.weight   (E, 1, kt, k, k)    as is (base, ``3d``)
    blocks.b1_l0.deep.conv_1.conv2d.weight   (E, 1, k, k)        -> conv3d, (E, 1, 1, k, k)   (stream)
    blocks.b1_l0.deep.conv_2.conv2d.weight   (E, 1, kt, 1)       -> conv3d, (E, 1, kt, 1, 1)  (stream)
    any other conv2d.weight                  (O, I, kh, kw)      -> conv3d, (O, I, 1, kh, kw)
    *.norm.{weight,bias,running_mean,running_var} -> *.norm.{gamma,beta,moving_mean,moving_variance}
    *.num_batches_tracked                    dropped

Strict: the variant of the file (A0/A1/A2 from its layers, stream or base from its SE width and
(2+1)D keys) must be the config's, else one line names both; then every key is checked against
the network (unmapped and missing keys named, shapes compared). Pure NumPy.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Any, Dict, Mapping, Tuple

import numpy as np

from ..errors import UserError
from .movinet import ARCHS
from .state_map import map_reference_state
from .weights import WeightLayout, register_layout, strip_prefix

LAYER_RE = re.compile(r"blocks\.b(\d+)_l(\d+)\.")
# layers per stage -> arch
STAGE_DEPTHS = {tuple(len(layers) for _, _, layers in spec[1]): arch for arch, spec in ARCHS.items()}


def port_to_ours(key: str, value: np.ndarray) -> Tuple[str, np.ndarray]:
    """One port tensor under our name and shape (BatchNorm leaves are renamed later)."""
    if ".conv2d." not in key:
        return key, value
    key = key.replace(".conv2d.", ".conv3d.")
    if key.endswith(".weight") and value.ndim == 4:
        # the temporal (kt, 1) conv of a (2+1)D layer gains W; every other 2-D conv gains T
        value = value[..., None] if ".deep.conv_2." in key else value[:, :, None]
    return key, value


def identify(state: Mapping[str, np.ndarray]) -> Dict[str, Any]:
    """What a port state dict holds: ``arch`` (a0/a1/a2 or None), ``causal``, ``factorised``."""
    depths = Counter()
    for key in state:
        m = LAYER_RE.match(key)
        if m:
            depths[(int(m[1]), int(m[2]))] += 1
    stages = max((i for i, _ in depths), default=-1) + 1
    per_stage = tuple(1 + max(j for i, j in depths if i == s) if any(i == s for i, _ in depths) else 0
                      for s in range(stages))
    factorised = any(".conv2d." in k or ".deep.conv_2." in k for k in state)
    conv = "conv2d" if factorised else "conv3d"
    fc1 = state.get(f"blocks.b0_l0.se.fc1.conv_1.{conv}.weight")
    fc2 = state.get(f"blocks.b0_l0.se.fc2.conv_1.{conv}.weight")
    # causal SE (2plus3d) reads concat([cumulative mean, frame mean]): twice the channels in
    causal = fc1 is not None and fc2 is not None and fc1.shape[1] == 2 * fc2.shape[0]
    return {"arch": STAGE_DEPTHS.get(per_stage), "causal": causal, "factorised": factorised, "depths": per_stage}


def describe_variant(arch: Any, causal: bool, factorised: bool) -> str:
    name = f"MoViNet-{arch.upper()}" if arch else "MoViNet of unknown depth"
    return f"{name} {'stream' if causal else 'base'} ({'2plus1d' if factorised else '3d'})"


class MoViNetPortLayout(WeightLayout):
    """Atze00/MoViNet-pytorch ``state_dict()`` (``conv1.conv_1.*``, ``blocks.b{i}_l{j}.*``,
    ``conv7.*``, ``classifier.{0,3}.*``), base (``3d``) or stream (``2plus1d``) models."""

    name = "movinet_port"
    model_prefixes = ("movinet",)
    describe = "conv1.conv_1.* / blocks.b0_l0.* / classifier.0.* keys of the PyTorch MoViNet port"

    def detect(self, keys) -> bool:
        return any(k.startswith("conv1.conv_1.") for k in keys) and any(k.startswith("blocks.b0_l0.") for k in keys)

    def convert(self, state, net, *, where):
        state = strip_prefix(state)
        found = identify(state)
        want = (net.variant, net.causal, net.conv_type != "3d")
        have = (found["arch"], found["causal"], found["factorised"])
        if have != want:
            hint = (f"use src/config/movinet_{found['arch']}_{'stream' if found['causal'] else 'base'}.yaml"
                    if found["arch"] and found["causal"] == found["factorised"]
                    else "set model.causal / model.conv_type to match")
            raise UserError(f"{where}: the checkpoint is a {describe_variant(*have)} but the config builds "
                            f"{describe_variant(*want)}; {hint}")
        renamed = dict(port_to_ours(k, np.asarray(v)) for k, v in state.items())
        params = map_reference_state(renamed, net, source=where)
        dropped = sum(1 for k in state if k.endswith("num_batches_tracked"))
        return params, {"read": len(state), "dropped": dropped}


register_layout(MoViNetPortLayout())

__all__ = ["MoViNetPortLayout", "identify", "port_to_ours", "describe_variant"]
