"""Convert a published X3D checkpoint (SlowFast or pytorchvideo ``.pyth``) to a MindSpore ``.ckpt``.

    python -m src.tools.convert_checkpoint --src X3D_XS.pyth --config src/config/x3d_xs.yaml \\
        --out x3d_xs.ckpt [--from slowfast|pytorchvideo] [--verify]

The source layout is detected from the keys unless ``--from`` says it. Every tensor is mapped
(``src/tools/checkpoint_map.py``): BatchNorm statistics renamed, ``num_batches_tracked`` dropped, the
res2 block-0 shortcut BN that pytorchvideo lacks filled with an exact identity. The conversion is
strict: leftovers on either side or a shape mismatch stop it with one line naming the keys.

PyTorch is needed only here, to read the file (``torch.load(weights_only=True)``: no code from a
downloaded file runs); it is not a runtime dependency. ``--verify`` also needs pytorchvideo: it
builds the reference torch model with the source weights, runs it and the converted MindSpore
model on the same random clip (logits, eval mode) and prints ``max_abs_diff: X``, failing above
1e-4.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import types
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from ..config import ConfigError, add_config_args, config_from_args
from .checkpoint_map import LAYOUTS, ConversionError, convert_state, resolve_layout, strip_prefix

TOLERANCE = 1e-4


class ToolError(Exception):
    """Bad input for the converter: printed as one ``error:`` line, exit status 2."""


# ----------------------------------------------------------------------------------- reading
def import_torch() -> Any:
    """``import torch`` with a one-line explanation when it is missing."""
    try:
        import torch
    except ImportError:
        raise ToolError("converting .pyth checkpoints needs PyTorch, which is not a runtime dependency: "
                        "pip install torch (CPU build is enough)") from None
    return torch


def load_torch_state(path: str) -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
    """Read a ``.pyth`` with ``weights_only=True``; returns ``(state as numpy, other entries)``.

    Accepts ``{"model_state": {...}, ...}`` (SlowFast and pytorchvideo hub files) or a bare
    state dict.
    """
    if not os.path.isfile(path):
        raise ToolError(f"{path}: no such checkpoint file")
    torch = import_torch()
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, random bytes, pickled code refused by weights_only ...
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ToolError(f"{path}: cannot read it as a torch checkpoint (truncated or corrupt?): "
                        f"{reason[:200]}") from None
    if not isinstance(obj, Mapping):
        raise ToolError(f"{path}: expected a dict with 'model_state' (or a state dict), got {type(obj).__name__}")
    extra: Dict[str, Any] = {}
    if "model_state" in obj:
        extra = {k: v for k, v in obj.items() if k != "model_state"}
        obj = obj["model_state"]
        if not isinstance(obj, Mapping):
            raise ToolError(f"{path}: 'model_state' should be a state dict, got {type(obj).__name__}")
    elif not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ToolError(f"{path}: expected a dict with 'model_state' (or a state dict of tensors); "
                        f"top-level keys: {', '.join(map(str, list(obj)[:6]))}")
    state: Dict[str, np.ndarray] = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise ToolError(f"{path}: model_state['{key}'] is a {type(value).__name__}, not a tensor")
        state[str(key)] = value.detach().cpu().float().numpy() if value.is_floating_point() \
            else value.detach().cpu().numpy()
    if not state:
        raise ToolError(f"{path}: the state dict is empty")
    return state, extra


def check_slowfast_cfg(path: str, extra: Mapping[str, Any], num_frames: int, crop_size: int) -> None:
    """A SlowFast file carries its training config (YAML text): reject a frames/crop mismatch.

    X3D-XS, S and M have identical parameter shapes, so only this tells them apart.
    """
    text = extra.get("cfg")
    if not isinstance(text, str):
        return
    import yaml
    try:
        cfg = yaml.safe_load(text)
        data = cfg.get("DATA", {})
        frames, crop = int(data["NUM_FRAMES"]), int(data["TRAIN_CROP_SIZE"])
    except Exception:
        return  # not the expected dump: nothing to check against
    if (frames, crop) != (num_frames, crop_size):
        raise ToolError(f"{path}: the checkpoint was trained on {frames} frames at crop {crop} (its cfg), "
                        f"the config builds {num_frames} frames at crop {crop_size}: use the matching "
                        f"variant's config (or --set model.num_frames=... model.crop_size=...)")


# ----------------------------------------------------------------------------------- reference
def import_pytorchvideo_create_x3d() -> Any:
    """pytorchvideo's ``create_x3d``; fakes ``torchvision.ops`` if torchvision is absent.

    pytorchvideo imports ``torchvision.ops.RoIAlign`` at module level for its detection head; the
    X3D classifier never uses it.
    """
    import_torch()
    try:
        import torchvision.ops  # noqa: F401
    except ImportError:
        tv, tv_ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")

        class RoIAlign:  # placeholder: only referenced by pytorchvideo's RoI head
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                raise RuntimeError("torchvision is not installed (RoIAlign is a stub)")

        tv_ops.RoIAlign = RoIAlign
        tv.ops = tv_ops
        sys.modules["torchvision"], sys.modules["torchvision.ops"] = tv, tv_ops
    try:
        from pytorchvideo.models.x3d import create_x3d
    except ImportError as e:
        raise ToolError(f"--verify needs pytorchvideo: pip install --no-deps pytorchvideo==0.1.5 "
                        f"fvcore iopath ({e})") from None
    return create_x3d


def reference_kwargs(model_cfg: Mapping[str, Any], net: Any) -> Dict[str, Any]:
    """``create_x3d`` arguments of pytorchvideo for the network our config builds (logit head)."""
    from ..models.x3d import X3D_VARIANTS
    cfg = model_cfg.to_dict() if hasattr(model_cfg, "to_dict") else dict(model_cfg)
    args = {**X3D_VARIANTS.get(str(cfg.get("type")), {}), **cfg}
    out: Dict[str, Any] = dict(input_clip_length=net.num_frames, input_crop_size=net.crop_size,
                               model_num_class=net.num_classes, head_activation=None)
    for ours, theirs in (("in_channels", "input_channel"), ("width_factor", "width_factor"),
                         ("depth_factor", "depth_factor"), ("base_width", "stem_dim_in"),
                         ("bottleneck_factor", "bottleneck_factor"), ("se_ratio", "se_ratio"),
                         ("head_dim", "head_dim_out")):
        if ours in args:
            out[theirs] = args[ours]
    if "stem_temporal_kernel" in args:
        out["stem_conv_kernel_size"] = (int(args["stem_temporal_kernel"]), 3, 3)
    return out


_SF_TO_PV = [  # SlowFast module path -> pytorchvideo's (independent of the converter's rules)
    (r"s1\.pathway0_stem\.conv_xy", "blocks.0.conv.conv_t"),
    (r"s1\.pathway0_stem\.conv", "blocks.0.conv.conv_xy"),
    (r"s1\.pathway0_stem\.bn", "blocks.0.norm"),
    (r"head\.conv_5", "blocks.5.pool.pre_conv"),
    (r"head\.conv_5_bn", "blocks.5.pool.pre_norm"),
    (r"head\.lin_5", "blocks.5.pool.post_conv"),
    (r"head\.projection", "blocks.5.proj"),
]
_SF_TO_PV_BLOCK = {"branch1": "branch1_conv", "branch1_bn": "branch1_norm", "branch2.a": "branch2.conv_a",
                   "branch2.a_bn": "branch2.norm_a", "branch2.b": "branch2.conv_b",
                   "branch2.b_bn": "branch2.norm_b.0", "branch2.se.fc1": "branch2.norm_b.1.block.0",
                   "branch2.se.fc2": "branch2.norm_b.1.block.2", "branch2.c": "branch2.conv_c",
                   "branch2.c_bn": "branch2.norm_c"}


def slowfast_to_pytorchvideo_key(key: str) -> Optional[str]:
    """A SlowFast X3D key under pytorchvideo's name (None: no counterpart)."""
    module, _, leaf = key.rpartition(".")
    for pattern, theirs in _SF_TO_PV:
        if re.fullmatch(pattern, module):
            return f"{theirs}.{leaf}"
    m = re.fullmatch(r"s([2-5])\.pathway0_res(\d+)\.(.+)", module)
    if m and m[3] in _SF_TO_PV_BLOCK:
        return f"blocks.{int(m[1]) - 1}.res_blocks.{m[2]}.{_SF_TO_PV_BLOCK[m[3]]}.{leaf}"
    return None


def reference_model(create_x3d: Any, kwargs: Mapping[str, Any], state: Mapping[str, np.ndarray],
                    layout: str) -> Any:
    """pytorchvideo X3D (eval mode) holding the source weights, loaded strictly.

    pytorchvideo source: its own state dict as is. SlowFast source: a BatchNorm is added after the
    res2 block-0 shortcut conv (SlowFast has one there, pytorchvideo none) and the SlowFast keys
    are renamed to pytorchvideo's with a table of their own, so the converter's rules are checked
    against an independent path from the same source tensors.
    """
    import torch
    model = create_x3d(**kwargs)
    state = strip_prefix(state)
    if layout == "slowfast":
        block = model.blocks[1].res_blocks[0]
        block.branch1_norm = torch.nn.BatchNorm3d(block.branch1_conv.out_channels)
        renamed = {}
        for key, value in state.items():
            theirs = slowfast_to_pytorchvideo_key(key)
            if theirs is None:
                raise ToolError(f"--verify: SlowFast key {key} has no pytorchvideo counterpart")
            renamed[theirs] = value
        state = renamed
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, strict=True)
    return model.eval()


def verify(net: Any, model_cfg: Any, state: Mapping[str, np.ndarray], layout: str, seed: int = 0) -> float:
    """max |logits(torch reference) - logits(``net``)| on one random clip, both in eval mode.

    ``net`` is our X3D holding the converted weights, built with ``head_activation="none"``
    (averaged logits, as the reference built with ``head_activation=None``).
    """
    torch = import_torch()
    create_x3d = import_pytorchvideo_create_x3d()
    import mindspore as ms

    kwargs = reference_kwargs(model_cfg, net)
    try:
        ref = reference_model(create_x3d, kwargs, state, layout)
    except RuntimeError as e:
        raise ToolError(f"--verify: the pytorchvideo reference ({kwargs}) does not take these weights: "
                        f"{str(e).splitlines()[0]}") from None
    rng = np.random.default_rng(seed)
    clip = rng.standard_normal((1, net.in_channels, net.num_frames, net.crop_size, net.crop_size),
                               dtype=np.float32)
    with torch.no_grad():
        expected = ref(torch.from_numpy(clip)).numpy()
    previous_mode = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)  # one forward: no graph compilation
    try:
        net.set_train(False)
        got = net(ms.Tensor(clip)).asnumpy()
    finally:
        ms.set_context(mode=previous_mode)
    return float(np.max(np.abs(got - expected)))


# ----------------------------------------------------------------------------------- main
def _load(net: Any, params: Mapping[str, np.ndarray]) -> None:
    import mindspore as ms
    not_loaded, unused = ms.load_param_into_net(net, {k: ms.Parameter(ms.Tensor(v), name=k)
                                                      for k, v in params.items()}, strict_load=True)
    if not_loaded or unused:
        raise ToolError(f"internal: parameters not loaded {not_loaded[:5]}, unused {unused[:5]}")


def _save(net: Any, out: str) -> None:
    import mindspore as ms
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = f"{out}.tmp{os.getpid()}.ckpt"
    ms.save_checkpoint(net, tmp)
    os.replace(tmp, out)


def convert(src: str, model_cfg: Any, out: str, layout: Optional[str] = None,
            run_verify: bool = False) -> Dict[str, Any]:
    """Convert ``src`` for the model of ``model_cfg`` and write ``out``; returns a summary."""
    state, extra = load_torch_state(src)
    try:
        layout = resolve_layout(list(state), layout, where=src)  # before the (slower) model build
    except ConversionError as e:
        raise ToolError(str(e)) from None
    if run_verify:
        import_pytorchvideo_create_x3d()  # fail before converting if the reference is missing
    import mindspore as ms
    ms.set_device("CPU")  # conversion and --verify run on the CPU
    from ..models import build_model
    # The head activation holds no parameters: with --verify one logit-head net serves both.
    net = build_model(model_cfg, **({"head_activation": "none"} if run_verify else {}))
    target = {name: tuple(p.shape) for name, p in net.parameters_and_names()}
    try:
        params, info = convert_state(state, target, layout=layout, where=src)
    except ConversionError as e:
        raise ToolError(str(e)) from None
    if info["layout"] == "slowfast":
        check_slowfast_cfg(src, extra, net.num_frames, net.crop_size)
    _load(net, params)
    summary: Dict[str, Any] = dict(info, params=len(params), written=False)
    if run_verify:
        summary["max_abs_diff"] = verify(net, model_cfg, state, info["layout"])
        if not summary["max_abs_diff"] <= TOLERANCE:
            return summary  # not exact: write nothing
    _save(net, out)
    summary["written"] = True
    return summary


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m src.tools.convert_checkpoint",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--src", required=True, help="SlowFast or pytorchvideo .pyth checkpoint")
    parser.add_argument("--out", required=True, help="MindSpore .ckpt to write")
    parser.add_argument("--from", dest="layout", choices=LAYOUTS, default=None,
                        help="source layout (default: detected from the keys)")
    parser.add_argument("--verify", action="store_true",
                        help=f"compare logits with the pytorchvideo reference (fails above {TOLERANCE:g})")
    add_config_args(parser)
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
        summary = convert(args.src, cfg.model, args.out, args.layout, args.verify)
    except (ToolError, ConfigError, KeyError, ValueError, TypeError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2
    print(f"layout: {summary['layout']}")
    print(f"tensors: {summary['read']} read, {summary['dropped']} num_batches_tracked dropped, "
          f"{summary['params']} parameters written")
    if summary["identity_bn"]:
        print(f"identity BN (absent in the source): {', '.join(summary['identity_bn'])}")
    if "max_abs_diff" in summary:
        diff = summary["max_abs_diff"]
        print(f"max_abs_diff: {diff:.3g}")
        if not summary["written"]:
            print(f"error: --verify: max_abs_diff {diff:.3g} exceeds {TOLERANCE:g}: the conversion is not "
                  f"exact; nothing written", file=sys.stderr)
            return 1
    print(f"wrote: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
