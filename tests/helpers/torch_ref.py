"""Torch reference X3D models for parity tests (needs torch and pytorchvideo, no torchvision).

* ``pytorchvideo_x3d``: pytorchvideo's own ``create_x3d`` (the hub architecture), optionally with
  the res2 block-0 shortcut BatchNorm that SlowFast has and pytorchvideo lacks, so the same torch
  module computes what a SlowFast checkpoint computes.
* ``randomize_``: every weight AND the BN running statistics drawn far from their init/identity.
* ``slowfast_state``: a pytorchvideo state dict renamed to SlowFast's key names (written here
  independently of the converter's rules, so a wrong rule there cannot cancel out).
"""
from __future__ import annotations

import re
import sys
import types
from typing import Any, Dict, Optional

import torch
from torch import nn

from src.tools.bench.torch_ref.e3d_heavy import randomize_ as randomize_any


def stub_torchvision() -> None:
    """pytorchvideo imports ``torchvision.ops.RoIAlign`` at module level; X3D never uses it."""
    try:
        import torchvision.ops  # noqa: F401
        return
    except ImportError:
        pass
    tv, tv_ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")

    class RoIAlign:  # only pytorchvideo's detection head would construct it
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("torchvision stub")

    tv_ops.RoIAlign = RoIAlign
    tv.ops = tv_ops
    sys.modules["torchvision"], sys.modules["torchvision.ops"] = tv, tv_ops


def pytorchvideo_x3d(*, frames: int = 4, crop: int = 160, num_classes: int = 400, depth_factor: float = 2.2,
                     head_activation: Optional[type] = None, slowfast_shortcut_bn: bool = False) -> nn.Module:
    """pytorchvideo X3D (XS/S/M: depth 2.2, L: 5.0) in eval mode; logits head by default."""
    stub_torchvision()
    from pytorchvideo.models.x3d import create_x3d
    model = create_x3d(input_clip_length=frames, input_crop_size=crop, model_num_class=num_classes,
                       depth_factor=depth_factor, head_activation=head_activation)
    if slowfast_shortcut_bn:
        block = model.blocks[1].res_blocks[0]
        assert block.branch1_norm is None  # pytorchvideo: no BN after the 24->24 shortcut conv
        block.branch1_norm = nn.BatchNorm3d(block.branch1_conv.out_channels)
    return model.eval()


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Redraw all parameters and BN running statistics (in place) so nothing is at identity; a
    block's last BN (``norm_c``) small, so 25 residual additions keep activations O(1-10)."""
    return randomize_any(model, seed, small_bn=lambda name: name.endswith("norm_c"), small_scale=0.2)


_PV_TO_SLOWFAST_BRANCH2 = {"conv_a": "a", "norm_a": "a_bn", "conv_b": "b", "norm_b.0": "b_bn",
                           "norm_b.1.block.0": "se.fc1", "norm_b.1.block.2": "se.fc2",
                           "conv_c": "c", "norm_c": "c_bn"}


def _slowfast_key(key: str) -> str:
    stem = {"blocks.0.conv.conv_t.": "s1.pathway0_stem.conv_xy.",  # spatial conv (swapped name)
            "blocks.0.conv.conv_xy.": "s1.pathway0_stem.conv.",    # temporal conv (swapped name)
            "blocks.0.norm.": "s1.pathway0_stem.bn.",
            "blocks.5.pool.pre_conv.": "head.conv_5.", "blocks.5.pool.pre_norm.": "head.conv_5_bn.",
            "blocks.5.pool.post_conv.": "head.lin_5.", "blocks.5.proj.": "head.projection."}
    for old, new in stem.items():
        if key.startswith(old):
            return new + key[len(old):]
    m = re.fullmatch(r"blocks\.(\d)\.res_blocks\.(\d+)\.(.+)\.(\w+)", key)
    assert m, key
    stage, block, module, leaf = int(m[1]) + 1, m[2], m[3], m[4]
    if module == "branch1_conv":
        module = "branch1"
    elif module == "branch1_norm":
        module = "branch1_bn"
    else:
        module = "branch2." + _PV_TO_SLOWFAST_BRANCH2[module[len("branch2."):]]
    return f"s{stage}.pathway0_res{block}.{module}.{leaf}"


def slowfast_state(pv_state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename a pytorchvideo X3D state dict to SlowFast's key names (same tensors)."""
    out = {_slowfast_key(k): v.clone() for k, v in pv_state.items()}
    assert len(out) == len(pv_state)
    return out


def slowfast_cfg(frames: int, crop: int) -> str:
    """The part of a SlowFast ``cfg.dump()`` the converter reads (YAML text)."""
    return f"DATA:\n  NUM_FRAMES: {frames}\n  TRAIN_CROP_SIZE: {crop}\nMODEL:\n  ARCH: x3d\n"
