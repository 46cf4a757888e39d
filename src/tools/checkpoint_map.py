"""Map published X3D state dicts (SlowFast / pytorchvideo) onto this package's parameter names.

Pure NumPy: the caller reads the torch file (``src/tools/convert_checkpoint.py``) and passes
``{key: ndarray}``; here every key is renamed, BatchNorm statistics get MindSpore's names,
``num_batches_tracked`` is dropped, and the result is checked against the model's parameter
shapes. The conversion is strict: a source tensor without a place in the model, or a model
parameter without a source tensor, is an error that lists both sides.

Layouts (see the README "Pretrained weights" section):

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
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

LAYOUTS = ("slowfast", "pytorchvideo")
BN_EPS = 1e-5
BN_NAMES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean",
            "running_var": "moving_variance"}
BN_STAT_LEAVES = ("running_mean", "running_var")
DROPPED_LEAVES = ("num_batches_tracked",)
# Blocks per stage (res2..res5) of the published variants, for "wrong variant?" hints.
KNOWN_DEPTHS = {(3, 5, 11, 7): "X3D-XS/S/M (depth factor 2.2)", (5, 10, 25, 15): "X3D-L (depth factor 5.0)"}


class ConversionError(ValueError):
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


def strip_prefix(state: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Drop a ``module.`` prefix (checkpoints saved from DataParallel/DDP wrappers)."""
    keys = list(state)
    if keys and all(k.startswith("module.") for k in keys):
        return OrderedDict((k[len("module."):], v) for k, v in state.items())
    return OrderedDict(state)


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


def resolve_layout(keys: Sequence[str], layout: Optional[str] = None, where: str = "checkpoint") -> str:
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
    layout = resolve_layout(keys, layout, where)
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
