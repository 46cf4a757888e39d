"""X3D's published weight layouts (SlowFast / pytorchvideo), mapped onto this package's names.

The model owns its weight layouts: ``src/tools/convert_checkpoint.py`` only reads the torch file
and asks the registered layouts (``WEIGHT_LAYOUTS``: ``slowfast``, ``pytorchvideo``) to convert.
Pure NumPy (torch and pytorchvideo are imported only by ``--verify``): the caller passes
``{key: ndarray}``; here every key is renamed, BatchNorm statistics get MindSpore's names,
``num_batches_tracked`` is dropped, and the result is checked against the model's parameter
shapes. The conversion is strict: a source tensor without a place in the model, or a model
parameter without a source tensor, is an error that lists both sides.

Layouts (see docs/weight_conversion.md):

* SlowFast ``.pyth``: ``s1.pathway0_stem.{conv_xy,conv,bn}``, ``s{2..5}.pathway0_res{j}.*``,
  ``head.{conv_5,conv_5_bn,lin_5,projection}`` - the same module names as ours.
* pytorchvideo hub ``.pyth``: ``blocks.0.conv.conv_t`` is the SPATIAL 1x3x3 conv and
  ``blocks.0.conv.conv_xy`` the temporal one (names swapped relative to SlowFast),
  ``blocks.{1..4}.res_blocks.{j}.*``, ``blocks.5.{pool.pre_conv,pool.pre_norm,pool.post_conv,proj}``.
  Its res2 block-0 shortcut has no BatchNorm; ours (as SlowFast) has one, which is filled with an
  exact identity (gamma 1, beta 0, mean 0, variance 1 - eps).
"""
from __future__ import annotations

import re
from collections import OrderedDict
import sys
import types
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import UserError
from .x3d import VARIANT_ARGS
from .weights import BN_NAMES, WeightLayout, register_layout, strip_prefix

LAYOUTS = ("slowfast", "pytorchvideo")
BN_EPS = 1e-5
BN_STAT_LEAVES = ("running_mean", "running_var")
DROPPED_LEAVES = ("num_batches_tracked",)
# Blocks per stage (res2..res5) of the published variants, for "wrong variant?" hints.
KNOWN_DEPTHS = {(3, 5, 11, 7): "X3D-XS/S/M (depth factor 2.2)", (5, 10, 25, 15): "X3D-L (depth factor 5.0)"}


class ConversionError(UserError, ValueError):
    """A checkpoint that does not fit the model (one-line message naming keys and shapes)."""


# ----------------------------------------------------------------------------------- renaming
# Each rule maps a source *module path* (key without its last component) to ours, or None.
Rule = Tuple[str, Callable[[re.Match], str]]

_PV_BRANCH2 = {"conv_a": "a", "norm_a": "a_bn", "conv_b": "b", "norm_b.0": "b_bn",
               "norm_b.1.block.0": "se.fc1", "norm_b.1.block.2": "se.fc2", "conv_c": "c",
               "norm_c": "c_bn"}

_RULES: Dict[str, List[Rule]] = {
    "slowfast": [
        (r"s1\.pathway0_stem\.conv_xy", lambda m: "stem.conv_xy"),
        (r"s1\.pathway0_stem\.conv", lambda m: "stem.conv_t"),
        (r"s1\.pathway0_stem\.bn", lambda m: "stem.bn"),
        (r"s([2-5])\.pathway0_res(\d+)\.(branch1|branch1_bn)", lambda m: f"res{m[1]}.{m[2]}.{m[3]}"),
        (r"s([2-5])\.pathway0_res(\d+)\.branch2\.(a|a_bn|b|b_bn|c|c_bn|se\.fc1|se\.fc2)",
         lambda m: f"res{m[1]}.{m[2]}.branch2.{m[3]}"),
        (r"head\.(conv_5|conv_5_bn|lin_5|projection)", lambda m: f"head.{m[1]}"),
    ],
    "pytorchvideo": [
        (r"blocks\.0\.conv\.conv_t", lambda m: "stem.conv_xy"),  # spatial 1x3x3 (swapped name)
        (r"blocks\.0\.conv\.conv_xy", lambda m: "stem.conv_t"),  # temporal 5x1x1 (swapped name)
        (r"blocks\.0\.norm", lambda m: "stem.bn"),
        (r"blocks\.([1-4])\.res_blocks\.(\d+)\.branch1_conv", lambda m: f"res{int(m[1]) + 1}.{m[2]}.branch1"),
        (r"blocks\.([1-4])\.res_blocks\.(\d+)\.branch1_norm", lambda m: f"res{int(m[1]) + 1}.{m[2]}.branch1_bn"),
        (r"blocks\.([1-4])\.res_blocks\.(\d+)\.branch2\.(conv_a|norm_a|conv_b|norm_b\.0|norm_b\.1\.block\.0|"
         r"norm_b\.1\.block\.2|conv_c|norm_c)",
         lambda m: f"res{int(m[1]) + 1}.{m[2]}.branch2.{_PV_BRANCH2[m[3]]}"),
        (r"blocks\.5\.pool\.pre_conv", lambda m: "head.conv_5"),
        (r"blocks\.5\.pool\.pre_norm", lambda m: "head.conv_5_bn"),
        (r"blocks\.5\.pool\.post_conv", lambda m: "head.lin_5"),
        (r"blocks\.5\.proj", lambda m: "head.projection"),
    ],
}

_DETECT = {"slowfast": "s1.pathway0_stem.", "pytorchvideo": "blocks.0.conv.conv_t."}


def detect_layout(keys: Sequence[str]) -> Optional[str]:
    """'slowfast' or 'pytorchvideo' from the stem's key names; None when neither matches."""
    found = [name for name, prefix in _DETECT.items() if any(k.startswith(prefix) for k in keys)]
    return found[0] if len(found) == 1 else None


def module_name(source_module: str, layout: str) -> Optional[str]:
    """Our module path for a source module path (None: no rule matches)."""
    for pattern, target in _RULES[layout]:
        m = re.fullmatch(pattern, source_module)
        if m:
            return target(m)
    return None


def rename(source_key: str, layout: str, bn_modules: Sequence[str] = ()) -> Optional[str]:
    """Our parameter name for one source key; ``bn_modules`` are source modules that are BNs."""
    module, _, leaf = source_key.rpartition(".")
    ours = module_name(module, layout)
    if ours is None:
        return None
    if module in bn_modules:
        if leaf not in BN_NAMES:
            return None
        leaf = BN_NAMES[leaf]
    return f"{ours}.{leaf}"


def resolve_x3d_layout(keys: Sequence[str], layout: Optional[str] = None, where: str = "checkpoint") -> str:
    """The layout to convert from: ``layout`` if given (checked against the keys), else detected."""
    detected = detect_layout([k[len("module."):] if k.startswith("module.") else k for k in keys])
    if layout is None:
        if detected is None:
            raise ConversionError(
                f"{where}: cannot tell the layout: expected SlowFast keys (s1.pathway0_stem.*) or "
                f"pytorchvideo keys (blocks.0.conv.conv_t.*); first keys: {_short_list(keys, 3) or 'none'}")
        return detected
    if layout not in LAYOUTS:
        raise ConversionError(f"unknown source layout '{layout}' (expected one of: {', '.join(LAYOUTS)})")
    if detected is not None and detected != layout:
        raise ConversionError(f"{where}: --from {layout}, but its keys are {detected}'s ({_DETECT[detected]}*)")
    return layout


# ----------------------------------------------------------------------------------- conversion
def _short_list(names: Sequence[str], limit: int = 6) -> str:
    names = list(names)
    head = ", ".join(names[:limit])
    return head + (f", ... (+{len(names) - limit} more)" if len(names) > limit else "")


def _shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def _blocks_per_stage(names: Sequence[str]) -> Tuple[int, ...]:
    depth = {s: 0 for s in range(2, 6)}
    for name in names:
        m = re.match(r"res([2-5])\.(\d+)\.", name)
        if m:
            depth[int(m[1])] = max(depth[int(m[1])], int(m[2]) + 1)
    return tuple(depth[s] for s in range(2, 6))


def _depth_hint(source_names: Sequence[str], target_names: Sequence[str]) -> str:
    src, dst = _blocks_per_stage(source_names), _blocks_per_stage(target_names)
    if src == dst or not any(src):
        return ""

    def what(depths: Tuple[int, ...]) -> str:
        return f"{list(depths)}" + (f" = {KNOWN_DEPTHS[depths]}" if depths in KNOWN_DEPTHS else "")

    return (f"; the checkpoint has blocks per stage {what(src)} but the config builds {what(dst)}: "
            f"wrong variant/config?")


def _fits(src: Tuple[int, ...], dst: Tuple[int, ...]) -> bool:
    """Same shape, or the same values with only size-1 axes added/removed (a plain reshape)."""
    if src == dst:
        return True
    return int(np.prod(src)) == int(np.prod(dst)) and [s for s in src if s != 1] == [d for d in dst if d != 1]


def convert_state(state: Mapping[str, np.ndarray], target: Mapping[str, Sequence[int]], *,
                  layout: Optional[str] = None, eps: float = BN_EPS,
                  where: str = "checkpoint") -> Tuple[Dict[str, np.ndarray], Dict[str, object]]:
    """Rename ``state`` (source key -> array) onto ``target`` (our name -> shape), strictly.

    Returns ``(params, info)``: float32 arrays under our names, in ``target`` order, and a
    summary (``layout``, ``read``, ``dropped``, ``identity_bn``, ``sources``: ours -> source key).
    Raises ``ConversionError`` naming ``where`` on any leftover or shape mismatch.
    """
    state = strip_prefix(state)
    keys = list(state)
    layout = resolve_x3d_layout(keys, layout, where)
    bn_modules = {k.rpartition(".")[0] for k in keys if k.rpartition(".")[2] in BN_STAT_LEAVES}
    sources: Dict[str, str] = OrderedDict()
    unused: List[str] = []
    dropped = 0
    for key in keys:
        if key.rpartition(".")[2] in DROPPED_LEAVES:
            dropped += 1
            continue
        ours = rename(key, layout, bn_modules)
        if ours is None or ours not in target or ours in sources:
            unused.append(key)
        else:
            sources[ours] = key

    identity: List[str] = []
    if layout == "pytorchvideo":
        # pytorchvideo builds no BN after a shortcut conv whose input and output widths agree
        # (X3D: res2 block 0); ours has one, which is then an identity.
        for name in target:
            if name.endswith(".branch1_bn.gamma"):
                bn = name[: -len(".gamma")]
                conv = bn[: -len("_bn")] + ".weight"
                stats = [f"{bn}.{leaf}" for leaf in BN_NAMES.values()]
                if conv in sources and not any(s in sources for s in stats):
                    identity.append(bn)

    identity_params = {f"{bn}.{leaf}" for bn in identity for leaf in BN_NAMES.values()}
    missing = [n for n in target if n not in sources and n not in identity_params]
    if unused or missing:
        parts = []
        if unused:
            parts.append(f"{len(unused)} checkpoint tensor(s) have no place in the model: {_short_list(unused)}")
        if missing:
            parts.append(f"{len(missing)} model parameter(s) are not in the checkpoint: {_short_list(missing)}")
        raise ConversionError(f"{where} ({layout} layout): " + "; ".join(parts)
                              + _depth_hint(list(sources) + [rename(k, layout, bn_modules) or "" for k in unused],
                                            list(target)))

    params: Dict[str, np.ndarray] = OrderedDict()
    mismatches: List[str] = []
    for name, shape in target.items():
        shape = tuple(int(s) for s in shape)
        if name in identity_params:
            leaf = name.rpartition(".")[2]
            value = {"gamma": 1.0, "beta": 0.0, "moving_mean": 0.0, "moving_variance": 1.0 - eps}[leaf]
            params[name] = np.full(shape, value, np.float32)
            continue
        key = sources[name]
        array = np.asarray(state[key])
        if not _fits(tuple(array.shape), shape):
            msg = f"{key} -> {name}: checkpoint shape {_shape(array.shape)}, model shape {_shape(shape)}"
            if name.startswith("head.projection."):
                msg += (f" (the checkpoint has {array.shape[0]} classes, the config {shape[0]}: "
                        f"set model.num_classes={array.shape[0]})")
            mismatches.append(msg)
            continue
        params[name] = np.ascontiguousarray(array.reshape(shape), dtype=np.float32)
    if mismatches:
        more = f" (+{len(mismatches) - 1} more mismatch(es))" if len(mismatches) > 1 else ""
        raise ConversionError(f"{where}: shape mismatch: {mismatches[0]}{more}")

    info = {"layout": layout, "read": len(keys), "dropped": dropped, "identity_bn": identity,
            "sources": dict(sources)}
    return params, info


# ----------------------------------------------------------------------------------- verification
def _import_torch() -> Any:
    """``import torch`` with a one-line explanation when it is missing (never a runtime dependency)."""
    try:
        import torch
    except ImportError:
        raise UserError("--verify needs PyTorch, which is not a runtime dependency: pip install torch "
                        "(the CPU build is enough)") from None
    return torch


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
        raise UserError(f"{path}: the checkpoint was trained on {frames} frames at crop {crop} (its cfg), "
                        f"the config builds {num_frames} frames at crop {crop_size}: use the matching "
                        f"variant's config (or --set model.num_frames=... model.crop_size=...)")


# ----------------------------------------------------------------------------------- reference
def import_pytorchvideo_create_x3d() -> Any:
    """pytorchvideo's ``create_x3d``; fakes ``torchvision.ops`` if torchvision is absent.

    pytorchvideo imports ``torchvision.ops.RoIAlign`` at module level for its detection head; the
    X3D classifier never uses it.
    """
    _import_torch()
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
        raise UserError(f"--verify needs pytorchvideo: pip install --no-deps pytorchvideo==0.1.5 "
                        f"fvcore iopath ({e})") from None
    return create_x3d


def reference_kwargs(model_cfg: Mapping[str, Any], net: Any) -> Dict[str, Any]:
    """``create_x3d`` arguments of pytorchvideo for the network our config builds (logit head)."""
    cfg = model_cfg.to_dict() if hasattr(model_cfg, "to_dict") else dict(model_cfg)
    args = {**VARIANT_ARGS.get(str(cfg.get("type")), {}), **cfg}
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
                raise UserError(f"--verify: SlowFast key {key} has no pytorchvideo counterpart")
            renamed[theirs] = value
        state = renamed
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, strict=True)
    return model.eval()


# ----------------------------------------------------------------------------------- layouts
class X3DLayout(WeightLayout):
    """SlowFast or pytorchvideo X3D ``.pyth`` files."""

    model_prefixes = ("x3d",)

    def __init__(self, name: str) -> None:
        self.name = name
        self.describe = f"{_DETECT[name]}* keys"

    def detect(self, keys: Sequence[str]) -> bool:
        return detect_layout(list(keys)) == self.name

    def build_kwargs(self, verify: bool) -> Dict[str, Any]:
        # The head activation holds no parameters: with --verify one logit-head net serves both.
        return {"head_activation": "none"} if verify else {}

    def convert(self, state, net, *, where):
        target = {name: tuple(p.shape) for name, p in net.parameters_and_names()}
        return convert_state(state, target, layout=self.name, where=where)

    def check_extra(self, extra, net, *, where):
        if self.name == "slowfast":
            check_slowfast_cfg(where, extra, net.num_frames, net.crop_size)

    def reference_logits(self, net, model_cfg, state, clip):
        torch = _import_torch()
        create_x3d = import_pytorchvideo_create_x3d()
        kwargs = reference_kwargs(model_cfg, net)
        try:
            ref = reference_model(create_x3d, kwargs, state, self.name)
        except RuntimeError as e:
            raise UserError(f"--verify: the pytorchvideo reference ({kwargs}) does not take these weights: "
                            f"{str(e).splitlines()[0]}") from None
        with torch.no_grad():
            return ref(torch.from_numpy(clip)).numpy()


for _name in LAYOUTS:
    register_layout(X3DLayout(_name))
