"""The typed, ranged schema of a config: every key has a type and, where it matters, a range or a
choice list; a wrong value is one line naming the key, what was expected and where it came from.

Two sources declare types:

* :data:`SCHEMA`: the plain (non-component) keys of ``defaults.yaml`` by dotted path
  (``train.epochs``, ``data_loader.train.batch_size`` ...). A key of ``defaults.yaml`` without an
  entry here fails ``tests/config/test_schema.py`` naming the key.
* A *component* (a mapping with ``type``, built through a registry: ``model``, ``learning_rate``,
  ``optimizer``, ``loss``, the data sets and the transforms of ``map.operations``) takes its
  argument types from its builder's type hints (``int``, ``float``, ``bool``, ``str``,
  ``Optional[...]``, ``Sequence[...]``, ``Tuple[...]``, ``Dict``); the ranges of the arguments are
  declared by argument name in :data:`ARG_RANGES` (``num_frames`` >= 1 in every component that takes
  it), special cases per builder (or per registry, builder ``*``) in :data:`COMPONENT_ARGS`.
  Builders without hints (MindSpore's own classes registered by name) check their arguments
  themselves. Arguments the code passes when it builds a component (:data:`RUNTIME_ONLY`, e.g. a
  data set's ``class_names``) are refused in a config.

Rules: ints stay ints (``1.5`` is refused where an int is expected), YAML ints are accepted where a
float is expected, bools are not numbers, ``null`` only where the key says so; a component argument
that the model's record fills (:data:`RECORD_FILLED`, see ``geometry.py``) may be ``null``.

The error: ``KEY: expected TYPE [RANGE], got VALUE (from FILE or override 'KEY=VALUE')``.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
from collections import abc
import sys
import typing
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import yaml

from .errors import ConfigError
from ..registry import RegistryError, check_kwargs


class SchemaError(ConfigError):
    """A config value of the wrong type or out of range (one line: key, expectation, value, source)."""


@dataclass(frozen=True)
class Spec:
    """Type (``int``, ``float``, ``bool``, ``str``, ``list``, ``dict`` or ``any``), range or choices,
    and whether ``null`` is allowed; ``item``/``length`` describe a list's elements."""

    kind: str
    lo: Optional[float] = None
    hi: Optional[float] = None
    lo_open: bool = False
    hi_open: bool = False
    choices: Optional[Tuple[Any, ...]] = None
    nullable: bool = False
    item: Optional["Spec"] = None
    length: Optional[int] = None
    ignore_case: bool = False

    # ------------------------------------------------------------------ checking
    def problem(self, value: Any) -> bool:
        """True when ``value`` does not fit (type, range or choices)."""
        if value is None:
            return not self.nullable
        if self.choices is not None:
            return not any(_same(value, c, self.ignore_case) for c in self.choices)
        if not _is_kind(value, self.kind):
            return True
        if self.kind in ("int", "float"):
            if self.kind == "float" and not math.isfinite(float(value)):
                return True
            if self.lo is not None and (value < self.lo or (self.lo_open and value == self.lo)):
                return True
            if self.hi is not None and (value > self.hi or (self.hi_open and value == self.hi)):
                return True
        if self.kind == "list":
            if self.length is not None and len(value) != self.length:
                return True
            if self.item is not None and any(self.item.problem(v) for v in value):
                return True
        return False

    def describe(self) -> str:
        """``int >= 1``, ``float in [0, 1)``, ``one of 'auto', 'CPU'``, ``list of float`` (+ ``or null``)."""
        if self.choices is not None:
            text = "one of " + ", ".join(show(c) for c in self.choices)
        elif self.kind == "list":
            n = f"{self.length} " if self.length is not None else ""
            text = f"list of {n}{self.item.describe() if self.item else 'values'}"
        else:
            text = {"bool": "bool (true or false)", "dict": "mapping", "any": "value"}.get(self.kind, self.kind)
            if self.lo is not None and self.hi is not None:
                text += f" in {'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}"
            elif self.lo is not None:
                text += f" {'>' if self.lo_open else '>='} {_num(self.lo)}"
            elif self.hi is not None:
                text += f" {'<' if self.hi_open else '<='} {_num(self.hi)}"
        return text + (" or null" if self.nullable else "")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "any":
        return True
    if isinstance(value, bool):
        return kind == "bool"
    return {"int": isinstance(value, int), "float": isinstance(value, (int, float)),
            "bool": False, "str": isinstance(value, str), "list": isinstance(value, (list, tuple)),
            "dict": isinstance(value, Mapping)}[kind]


def _same(value: Any, choice: Any, ignore_case: bool) -> bool:
    if isinstance(value, bool) != isinstance(choice, bool) or isinstance(value, str) != isinstance(choice, str):
        return False
    if isinstance(value, float) and isinstance(choice, int) and not isinstance(choice, float):
        return False  # 1.0 is not the int choice 1
    if ignore_case and isinstance(value, str):
        return value.lower() == choice.lower()
    return value == choice


def show(value: Any) -> str:
    """A value as the user would write it: ``'abc'``, ``1.5``, ``true``, ``null``, ``[1, 2]``."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (list, tuple, Mapping)):
        text = yaml.safe_dump(_plain(value), default_flow_style=True, width=10 ** 6).strip()
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


# ------------------------------------------------------------------------- declaring
def int_(lo: Optional[int] = None, hi: Optional[int] = None, *, null: bool = False) -> Spec:
    return Spec("int", lo=lo, hi=hi, nullable=null)


def float_(lo: Optional[float] = None, hi: Optional[float] = None, *, lo_open: bool = False,
           hi_open: bool = False, null: bool = False) -> Spec:
    return Spec("float", lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open, nullable=null)


def str_(*, null: bool = False) -> Spec:
    return Spec("str", nullable=null)


def one_of(*choices: Any, null: bool = False, ignore_case: bool = False) -> Spec:
    return Spec("any", choices=tuple(choices), nullable=null, ignore_case=ignore_case)


BOOL = Spec("bool")

# Plain keys of defaults.yaml (components are typed by their builders, below).
SCHEMA: Dict[str, Spec] = {
    "context.mode": one_of(0, 1),
    "context.device_target": one_of("auto", "CPU", "GPU", "Ascend", ignore_case=True),
    "context.device_id": int_(0),
    "context.seed": int_(0, 2 ** 32 - 1),
    "context.cpu_threads": int_(0),
    "context.deterministic": BOOL,
    "context.jit_level": one_of("auto", "O0", "O1", "O2"),
    "train.epochs": int_(1),
    "train.output_dir": str_(),
    "train.ckpt_interval": int_(1),
    "train.keep_checkpoint_max": int_(1),
    "train.eval_interval": int_(0),
    "train.log_interval": int_(1),
    "train.precise_bn_batches": int_(0),
    "train.precise_bn_period": int_(0),
    "train.pretrained": str_(null=True),
    "train.finetune": one_of("complete", "last_layer"),
    "train.resume": str_(null=True),
    "train.max_steps_per_epoch": int_(0),
    "train.progress_bar": BOOL,
    "train.amp_level": one_of("O0", "O1", "O2", "O3", "auto"),
    "train.loss_scale_type": one_of("none", "fixed", "dynamic"),
    "train.loss_scale": float_(1),
    "train.loss_scale_factor": int_(2),
    "train.loss_scale_window": int_(1),
    "train.clip_grad": one_of("none", "norm", "value"),
    "train.clip_value": float_(0, lo_open=True),
    "train.accumulate_steps": int_(1),
    "train.sink_mode": BOOL,
    "train.sink_size": int_(-1),
    "train.ema": BOOL,
    "train.ema_decay": float_(0, 1, hi_open=True),
    "train.ema_warmup": float_(0),
    "train.multigrid.long_cycle": BOOL,
    "train.multigrid.short_cycle": BOOL,
    "train.multigrid.long_cycle_factors": Spec("list", item=Spec("list", item=float_(0, 1, lo_open=True), length=2)),
    "train.multigrid.short_cycle_factors": Spec("list", item=float_(0, 1, lo_open=True), length=2),
    "train.multigrid.epoch_factor": float_(0, lo_open=True),
    "train.multigrid.steps": Spec("list", item=float_(0, lo_open=True), nullable=True),
    "train.multigrid.precise_bn_batches": int_(0),
    "infer.num_clips": int_(1),
    "infer.num_crops": one_of(1, 3),
    "infer.short_side": int_(1, null=True),
    "infer.crop_size": int_(1, null=True),
    "infer.batch_size": int_(1),
    "infer.topk": int_(1),
    "infer.window_seconds": float_(0),
    "infer.stream_horizon": int_(0, null=True),
    "infer.fold_bn": BOOL,
    "infer.video_level": BOOL,
    "eval.num_clips": int_(1, null=True),
    "eval.num_crops": one_of(1, 3, null=True),
    "eval.short_side": int_(1, null=True),
    "eval.crop_size": int_(1, null=True),
    "eval.batch_size": int_(1, null=True),
    "eval.video_level": Spec("bool", nullable=True),
    "eval.fold_bn": Spec("bool", nullable=True),
    "data_loader.max_bad_fraction": float_(0, 1),
    "data_loader.decoder": one_of("decord", "pyav"),
    "data_loader.min_frames": int_(0),
    "data_loader.train.clips_per_video": int_(1),
    "data_loader.train.aug_repeats": int_(1),
    "data_loader.train.mixup.enable": BOOL,
    "data_loader.train.mixup.mixup_alpha": float_(0),
    "data_loader.train.mixup.cutmix_alpha": float_(0),
    "data_loader.train.mixup.prob": float_(0, 1),
    "data_loader.train.mixup.switch_prob": float_(0, 1),
    "data_loader.train.mixup.label_smoothing": float_(0, 1, hi_open=True, null=True),
}
for _split in ("train", "eval"):
    SCHEMA.update({f"data_loader.{_split}.batch_size": int_(1),
                   f"data_loader.{_split}.num_parallel_workers": int_(1),
                   f"data_loader.{_split}.python_multiprocessing": BOOL})

# Component sections: dotted path -> registry name; lists of components likewise.
COMPONENTS: Dict[str, str] = {"model": "models", "learning_rate": "lr_schedules", "optimizer": "optimizers",
                              "loss": "losses", "data_loader.train.dataset": "datasets",
                              "data_loader.eval.dataset": "datasets"}
COMPONENT_LISTS: Dict[str, str] = {"data_loader.train.map.operations": "transforms",
                                   "data_loader.eval.map.operations": "transforms"}

# Ranges of component arguments, by argument name (the type comes from the builder's hints).
_POSITIVE_INT = ("num_classes", "num_frames", "crop_size", "in_channels", "size", "min_size", "max_size",
                 "num_clips", "num_crops", "downsample", "reference_batch_size", "base_width", "head_dim",
                 "stem_temporal_kernel", "groups", "cardinality", "depth")
_NON_NEGATIVE = ("base_lr", "warmup_epochs", "warmup_start_lr", "eta_min", "momentum", "dampening",
                 "weight_decay", "bn_weight_decay", "se_ratio", "start_index")
_POSITIVE = ("sampling_rate", "target_fps", "fps", "gamma", "eps", "epsilon", "value_range", "width_mult", "width_factor",
             "depth_factor", "bottleneck_factor")
ARG_RANGES: Dict[str, Dict[str, Any]] = {
    **{k: dict(lo=1) for k in _POSITIVE_INT},
    **{k: dict(lo=0) for k in _NON_NEGATIVE},
    **{k: dict(lo=0, lo_open=True) for k in _POSITIVE},
    "dropout_rate": dict(lo=0, hi=1, hi_open=True),
    "drop_path_rate": dict(lo=0, hi=1, hi_open=True),  # model.drop_path_rate (src/models/layers/drop_path.py)
    "translate_pct": dict(lo=0, hi=1),  # RandAugment / AugMix (src/data/auto_augment.py)
    "label_smoothing": dict(lo=0, hi=1, hi_open=True),
    "rho": dict(lo=0, hi=1, hi_open=True),  # optimizer.rho (rmsprop, src/engine/optim.py)
    "prob": dict(lo=0, hi=1),
}
# (registry, builder, argument) -> Spec, where the hint alone does not say it
COMPONENT_ARGS: Dict[Tuple[str, str, str], Spec] = {
    # YAML reads an unquoted 1.1 as a number; the builder accepts both spellings
    ("models", "e3d_squeezenet", "version"): one_of("1.0", "1.1", 1.0, 1.1),
    ("transforms", "SpatialCrops", "num_crops"): one_of(1, 3),
    **{("transforms", t, "interpolation"): one_of("nearest", "bilinear", "bicubic")  # src/data/auto_augment.py
       for t in ("RandAugment", "AugMix", "AutoAugment")},
    ("transforms", "RandomErasing", "mode"): one_of("const", "rand", "pixel"),  # src/data/erasing.py
    ("datasets", "UCF101", "fold"): one_of(1, 2, 3),
    ("datasets", "HMDB51", "fold"): one_of(1, 2, 3),
    ("lr_schedules", "multistep", "first_epoch"): one_of(0, 1),
    # layer formulations (src/models/layers/policy.py: accepted_names; the last ones are deprecated
    # aliases, still accepted: fold -> banded, custom -> cpp); tests/models/test_layers.py checks
    ("models", "*", "conv_impl"): one_of("auto", "native", "banded", "cpp", "custom", "fold"),
    ("models", "*", "stem_impl"): one_of("auto", "native", "im2col", "gemm", "direct"),
    ("models", "*", "norm"): one_of("bn", "syncbn"),  # src/models/layers/norm.py (every family)
    # builder "*": every builder of the registry that takes the argument (docs/data.md)
    ("datasets", "*", "unknown_labels"): one_of("error", "skip"),
    ("datasets", "*", "allow_outside_root"): BOOL,
}
# Component arguments the code fills when it builds the component, never set by a config (why).
RUNTIME_ONLY: Dict[str, Dict[str, str]] = {
    "datasets": {"class_names": "the eval split gets the train split's class list; give a label_map to fix it",
                 "config_key": "the config path of the data set, for messages"},
}
# Component arguments that null leaves to the model's default record (src/config/geometry.py).
RECORD_FILLED: Dict[str, Tuple[str, ...]] = {
    "models": ("num_classes", "num_frames", "crop_size"),
    "datasets": ("num_frames", "sampling_rate", "target_fps"),
    "transforms": ("size", "min_size", "max_size", "mean", "std", "value_range", "order"),
}


# ------------------------------------------------------------------------- hints -> specs
def _hint_spec(hint: Any, name: str) -> Optional[Spec]:
    """The Spec of a type hint (None: not checkable, e.g. ``Any`` or a class)."""
    rng = ARG_RANGES.get(name, {})
    if hint is int:  # an open bound of an int range is the next int
        lo, hi = rng.get("lo"), rng.get("hi")
        return Spec("int", lo=None if lo is None else math.floor(lo) + 1 if rng.get("lo_open") else math.ceil(lo),
                    hi=None if hi is None else math.ceil(hi) - 1 if rng.get("hi_open") else math.floor(hi))
    if hint is float:
        return Spec("float", **rng)
    if hint is bool:
        return BOOL
    if hint is str:
        return Spec("str")
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1 and type(None) in args:
            spec = _hint_spec(inner[0], name)
            return None if spec is None else dataclasses.replace(spec, nullable=True)
        return None
    if hint in (dict, typing.Dict) or origin in (dict, abc.Mapping):
        return Spec("dict")
    if origin in (list, tuple, abc.Sequence):
        if origin is tuple and args and args[-1] is not Ellipsis:
            items = {_hint_spec(a, "") for a in args}
            return Spec("list", item=items.pop(), length=len(args)) if len(items) == 1 else None
        item = _hint_spec(args[0], "") if args else None
        return Spec("list", item=item)
    return None


def _module_namespace(builder: Any) -> Dict[str, Any]:
    mod = sys.modules.get(getattr(builder, "__module__", "") or "")
    ns = dict(vars(typing))
    ns.update(vars(mod) if mod else {})
    return ns


def builder_specs(registry: str, name: str, builder: Any) -> Dict[str, Optional[Spec]]:
    """``{argument: Spec or None}`` for a builder's keyword arguments (None: no usable hint)."""
    try:
        params = inspect.signature(builder).parameters.values()
    except (TypeError, ValueError):
        return {}
    ns = _module_namespace(builder)
    specs: Dict[str, Optional[Spec]] = {}
    for p in params:
        if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            continue
        override = COMPONENT_ARGS.get((registry, name, p.name), COMPONENT_ARGS.get((registry, "*", p.name)))
        if override is not None:
            specs[p.name] = override
            continue
        hint = p.annotation
        if isinstance(hint, str):
            try:
                hint = eval(hint, ns)  # noqa: S307  (the builder's own annotation text)
            except Exception:
                hint = inspect.Parameter.empty
        specs[p.name] = None if hint is inspect.Parameter.empty else _hint_spec(hint, p.name)
    return specs


def _registry(name: str) -> Any:
    from .. import models  # noqa: F401  (registers the models; imports MindSpore)
    from .. import data, engine  # noqa: F401  (data sets/transforms after MindSpore, as decord needs; engine: the rest)
    from .. import registry
    return {r.name: r for r in (registry.MODELS, registry.DATASETS, registry.TRANSFORMS, registry.LOSSES,
                                registry.OPTIMIZERS, registry.LR_SCHEDULES)}[name]


# ------------------------------------------------------------------------- walking a config
def _get(cfg: Mapping[str, Any], dotted: str) -> Tuple[bool, Any]:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _source(origin: Mapping[str, str], path: str) -> str:
    while path:
        if path in origin:
            return origin[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return "defaults.yaml"


def _fail(path: str, spec_text: str, value: Any, origin: Mapping[str, str]) -> None:
    hint = ""
    if isinstance(value, str):
        try:
            float(value)
            hint = f"; YAML reads {value} as text, write it with a decimal point (e.g. 1.0e-4)"
        except ValueError:
            pass
    raise SchemaError(f"{path}: expected {spec_text}, got {show(value)} (from {_source(origin, path)}){hint}")


def _check_component(node: Any, path: str, registry: str, origin: Mapping[str, str]) -> None:
    if not isinstance(node, Mapping):
        _fail(path, f"mapping with a 'type' ({registry})", node, origin)
    kind = node.get("type")
    if not isinstance(kind, str):
        _fail(f"{path}.type", f"str (a registered name in '{registry}')", kind, origin)
    builder = _registry(registry).get(kind)  # an unknown name: the registry's one-line error
    specs = builder_specs(registry, kind, builder)
    try:  # unknown keys now, not when the component is built (after the data set, say)
        check_kwargs(builder, {k: v for k, v in node.items() if k != "type"}, path, kind)
    except RegistryError as e:
        bad = next((k for k in node if k != "type" and k not in specs), "")
        raise SchemaError(f"{e} (from {_source(origin, f'{path}.{bad}')})") from None
    for key, why in RUNTIME_ONLY.get(registry, {}).items():
        if key in node:
            raise SchemaError(f"{path}.{key}: not a config key, the pipeline sets it ({why}) "
                              f"(from {_source(origin, f'{path}.{key}')})")
    filled = RECORD_FILLED.get(registry, ())
    for key, value in node.items():
        spec = specs.get(key)
        if key == "type" or spec is None:
            continue  # no hint: the builder checks
        if value is None and key in filled:
            continue  # null: from the model's default record
        if spec.problem(value):
            _fail(f"{path}.{key}", spec.describe(), value, origin)


def check_config(cfg: Mapping[str, Any], origin: Mapping[str, str], *, components: bool = True) -> None:
    """Check every declared key of the merged plain-dict ``cfg``; ``origin`` maps dotted paths to
    the file or override that set them. ``components``: also the registered components' arguments
    (imports the registries, hence MindSpore)."""
    for key, spec in SCHEMA.items():
        present, value = _get(cfg, key)
        if present and spec.problem(value):
            _fail(key, spec.describe(), value, origin)
    if not components:
        return
    for path, registry in COMPONENTS.items():
        present, node = _get(cfg, path)
        if present:
            _check_component(node, path, registry, origin)
    for path, registry in COMPONENT_LISTS.items():
        present, items = _get(cfg, path)
        if not present:
            continue
        if not isinstance(items, (list, tuple)):
            _fail(path, f"list of {registry} (mappings with a 'type')", items, origin)
        for i, item in enumerate(items):
            _check_component(item, f"{path}[{i}]", registry, origin)


def record_origin(origin: Dict[str, str], value: Any, source: str, prefix: str = "") -> None:
    """Note ``source`` as the origin of every path in ``value`` (a merged file or override)."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            origin[path] = source
            record_origin(origin, v, source, path)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            origin[f"{prefix}[{i}]"] = source
            record_origin(origin, v, source, f"{prefix}[{i}]")


def leaf_keys(node: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Dotted paths of the plain keys of ``node`` (component sections and their lists excluded)."""
    for k, v in node.items():
        path = f"{prefix}.{k}" if prefix else str(k)
        if path in COMPONENTS or path in COMPONENT_LISTS:
            continue
        if isinstance(v, Mapping):
            yield from leaf_keys(v, path)
        else:
            yield path


__all__: List[str] = ["Spec", "SchemaError", "SCHEMA", "COMPONENTS", "COMPONENT_LISTS", "ARG_RANGES",
                      "COMPONENT_ARGS", "RUNTIME_ONLY", "RECORD_FILLED", "check_config", "builder_specs", "record_origin",
                      "leaf_keys", "show"]
