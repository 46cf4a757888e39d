"""One source of truth for clip geometry: the model's default record.

The model section names a registered variant; its :class:`~src.models.base.PretrainedCfg` (with
the section's ``num_frames`` / ``crop_size`` / ``num_classes`` applied) says how many frames the
network takes, at which sampling rate, the train crop, the test views and the normalisation.
:func:`resolve_geometry` copies those values into every place of a config that needs them when
the config leaves them out (absent or ``null``), and rejects a value that contradicts the model
with one line naming both keys. The resolved config is complete, so ``config.yaml`` saved
beside checkpoints reproduces the run without the record.

Filled when absent or null:

* ``model.num_classes``, ``model.num_frames``, ``model.crop_size`` (when the builder takes them;
  a variant file or ``model.type=...`` override replaces the model section, so these follow)
* ``data_loader.{train,eval}.dataset.num_frames`` / ``sampling_rate`` / ``target_fps``
  (when the data set takes them; ``num_frames`` must equal the model's)
* the size of the train crop transform (must equal ``model.crop_size``), the eval
  ``ShortSideScale`` / ``SpatialCrops`` sizes, the input convention of the weights:
  ``Rescale`` value range, ``ChannelOrder`` order, ``Normalize`` mean/std
* ``infer.short_side`` / ``infer.crop_size`` and ``eval.short_side`` / ``eval.crop_size`` (the
  test views)

What a clip fed to a trained network must be, wherever it comes from (a config, a built network,
an exported file's metadata), is :class:`DataConfig`, made by :func:`resolve_data_config` (timm's
``resolve_data_config(model=...)``): the record's values, with the values a config sets
explicitly overriding them. The predictor (``infer.py``), ``eval.py``'s views, the exporter (and
the metadata it stores) and the MINDIR geometry check read the test clip through it; the eval
data set built from ``data_loader.eval.dataset`` samples with the same values (filled above).
"""
from __future__ import annotations

import copy
import inspect
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .errors import ConfigError

TRAIN_CROP_OPS = ("RandomCrop", "CenterCrop", "RandomResizedCrop", "MultiScaleCornerCrop", "MultiScaleRandomCrop")


class GeometryError(ConfigError):
    """Two config keys disagree about the clip geometry."""


def _accepts(builder: Any, key: str) -> bool:
    try:
        params = inspect.signature(builder).parameters
    except (TypeError, ValueError):
        return False
    return key in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _fill(node: Dict[str, Any], key: str, value: Any) -> None:
    if node.get(key) is None:
        node[key] = value


def resolve_geometry(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """A copy of the plain-dict config ``cfg`` with the geometry filled in and checked."""
    from ..models import resolve_pretrained_cfg  # imports MindSpore and registers every model
    from .. import data  # noqa: F401  (registers the data sets; after MindSpore, as decord needs)
    from ..registry import DATASETS, MODELS

    cfg = copy.deepcopy(cfg)
    model = cfg.get("model") or {}
    if "type" not in model:
        raise GeometryError("model: missing key 'type'")
    rec = resolve_pretrained_cfg(model["type"], model)
    builder = MODELS.get(model["type"])
    for key, value in (("num_classes", rec.num_classes), ("num_frames", rec.num_frames),
                       ("crop_size", rec.crop_size)):
        if _accepts(builder, key):
            _fill(model, key, value)

    dl = cfg.get("data_loader") or {}
    for split in ("train", "eval"):
        section = dl.get(split) or {}
        ds = section.get("dataset") or {}
        if "type" in ds and ds["type"] in DATASETS:
            ds_builder = DATASETS.get(ds["type"])
            where = f"data_loader.{split}.dataset"
            if ds.get("num_frames") is not None and int(ds["num_frames"]) != rec.num_frames:
                raise GeometryError(
                    f"{where}.num_frames is {ds['num_frames']} but the model takes {rec.num_frames} frames "
                    f"(model.num_frames of '{model['type']}'); remove {where}.num_frames (it follows the model) "
                    f"or set model.num_frames")
            for key, value in (("num_frames", rec.num_frames), ("sampling_rate", rec.sampling_rate),
                               ("target_fps", rec.target_fps)):
                if key == "sampling_rate" and ds.get("downsample") is not None:
                    continue  # the frame-folder data sets' alias (the reference's name) is given
                if _accepts(ds_builder, key) and (key not in ds or (ds[key] is None and key != "target_fps")):
                    ds[key] = value
        ops: List[Dict[str, Any]] = ((section.get("map") or {}).get("operations")) or []
        if split == "train":
            crops = [i for i, op in enumerate(ops) if isinstance(op, dict) and op.get("type") in TRAIN_CROP_OPS]
            if crops:
                i = crops[-1]
                size = ops[i].get("size")
                if size is None:
                    ops[i]["size"] = rec.crop_size
                elif int(size) != rec.crop_size:
                    raise GeometryError(
                        f"data_loader.train.map.operations[{i}].size ({ops[i]['type']}) is {size} but "
                        f"model.crop_size is {rec.crop_size}; remove the size (it follows the model) or set "
                        f"model.crop_size")
        for op in ops:
            if not isinstance(op, dict):
                continue
            if op.get("type") == "RandomShortSideScale" and rec.train_jitter is not None:
                _fill(op, "min_size", rec.train_jitter[0])
                _fill(op, "max_size", rec.train_jitter[1])
            elif op.get("type") == "ShortSideScale":
                _fill(op, "size", rec.test_short_side)
            elif op.get("type") == "SpatialCrops":
                _fill(op, "size", rec.crop_size)
            elif op.get("type") == "Normalize":
                _fill(op, "mean", list(rec.mean))
                _fill(op, "std", list(rec.std))
            elif op.get("type") == "Rescale":
                _fill(op, "value_range", rec.value_range)
            elif op.get("type") == "ChannelOrder":
                _fill(op, "order", rec.channel_order)
    test = resolve_data_config(rec)  # the record's test view, as inference reads it
    for section in ("infer", "eval"):
        views = cfg.get(section)
        if isinstance(views, dict):
            _fill(views, "short_side", test.short_side)
            _fill(views, "crop_size", test.crop_size)
    return cfg


# ----------------------------------------------------------------------------- the data config
@dataclass(frozen=True)
class DataConfig:
    """The clips a trained network takes at test time and what its outputs are.

    ``num_frames`` x ``sampling_rate`` (at ``target_fps``; None: the video's own frames), views of
    ``crop_size`` from frames scaled to ``short_side``, pixels scaled to ``[0, value_range]`` in
    ``channel_order`` then ``(x - mean) / std``; ``eval_output``: ``probabilities`` or ``logits``;
    ``offset_sampling``: the evaluation's clip placement (``src/data/sampling.py``)."""
    num_frames: int
    sampling_rate: float
    target_fps: Optional[float]
    short_side: int
    crop_size: int
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    value_range: float = 1.0
    channel_order: str = "RGB"
    eval_output: str = "logits"
    offset_sampling: bool = False
    in_channels: int = 3

    @property
    def input_size(self) -> Tuple[int, int, int, int]:
        """(C, T, H, W) of one view."""
        return (int(self.in_channels), int(self.num_frames), int(self.crop_size), int(self.crop_size))

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = [float(v) for v in self.mean], [float(v) for v in self.std]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DataConfig":
        """From :meth:`to_dict` (unknown keys ignored: a newer file's extra fields)."""
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        kw["mean"], kw["std"] = tuple(kw["mean"]), tuple(kw["std"])
        return cls(**kw)

    def replace(self, **changes: Any) -> "DataConfig":
        return replace(self, **changes)

    def operations(self, num_crops: int, base: Optional[Sequence[Mapping[str, Any]]] = None) -> List[Dict[str, Any]]:
        """The test transform list (``map.operations`` form) giving views of this config:
        ``base`` (a config's eval operations) with its view sizes and input convention set from
        here, or, without one, ShortSideScale, SpatialCrops, ChannelOrder (BGR only), Rescale,
        Normalize, ToCTHW."""
        from ..data.transforms import eval_operations
        if base is None:
            base = [{"type": "ShortSideScale"}, {"type": "SpatialCrops", "size": self.crop_size, "num_crops": 1}]
            if self.channel_order != "RGB":
                base.append({"type": "ChannelOrder"})
            base += [{"type": "Rescale"}, {"type": "Normalize"}, {"type": "ToCTHW"}]
        ops = eval_operations(base, num_crops=int(num_crops), short_side=self.short_side, crop_size=self.crop_size)
        for op in ops:
            kind = op.get("type")
            if kind == "Normalize":
                op["mean"], op["std"] = list(self.mean), list(self.std)
            elif kind == "Rescale":
                op["value_range"] = self.value_range
            elif kind == "ChannelOrder":
                op["order"] = self.channel_order
        return ops


def to_dict(node: Any) -> Any:
    """ConfigDict (or nested mappings) -> plain dicts and lists."""
    if hasattr(node, "to_dict"):
        node = node.to_dict()
    if isinstance(node, Mapping):
        return {k: to_dict(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [to_dict(v) for v in node]
    return node


def _record_of(model_or_record: Any) -> DataConfig:
    """The data config a record (or what holds one) gives, before any config value."""
    if isinstance(model_or_record, DataConfig):
        return model_or_record
    rec = getattr(model_or_record, "pretrained_cfg", None)  # a built network
    if rec is None and hasattr(model_or_record, "test_short_side"):
        rec = model_or_record  # a PretrainedCfg
    if rec is None:  # a config's model section
        from ..models import resolve_pretrained_cfg
        model = to_dict(model_or_record)
        if not isinstance(model, Mapping) or "type" not in model:
            raise TypeError(f"resolve_data_config: expected a network, a PretrainedCfg, a DataConfig or a "
                            f"model section with a 'type', got {type(model_or_record).__name__}")
        rec = resolve_pretrained_cfg(model["type"], model)
    return DataConfig(num_frames=rec.num_frames, sampling_rate=rec.sampling_rate, target_fps=rec.target_fps,
                      short_side=rec.test_short_side, crop_size=rec.test_crop_size, mean=tuple(rec.mean),
                      std=tuple(rec.std), value_range=rec.value_range, channel_order=rec.channel_order,
                      eval_output=rec.eval_output)


def resolve_data_config(model_or_record: Any, cfg: Optional[Any] = None, *, section: str = "infer") -> DataConfig:
    """The test clips of a model (timm's ``resolve_data_config(model=...)``).

    ``model_or_record``: a built network (its ``pretrained_cfg``), a :class:`PretrainedCfg`, a
    config's model section, or a :class:`DataConfig` (an exported file's). ``cfg`` (optional):
    the values it sets override the record's: ``<section>.short_side`` / ``crop_size``
    (``section`` is ``infer`` or ``eval``; a null ``eval`` value reads ``infer``'s),
    ``data_loader.eval.dataset`` ``num_frames`` / ``sampling_rate`` (or ``downsample``) /
    ``target_fps`` / ``offset_sampling``, the eval ``map.operations``' Normalize mean/std, Rescale
    value range and ChannelOrder (an operations list without ChannelOrder keeps the decoded RGB),
    and ``model.in_channels``. A null or absent key leaves the record's value: a config resolved
    at load time holds the record's values there, an unresolved one (``resolve=False``) nothing.
    ``eval_output`` is always the record's."""
    dc = _record_of(model_or_record)
    if cfg is None:
        return dc
    cfg = to_dict(cfg)
    changes: Dict[str, Any] = {}
    views = cfg.get(section) or {}
    fallback = (cfg.get("infer") or {}) if section == "eval" else {}
    for key in ("short_side", "crop_size"):
        value = views.get(key)
        value = fallback.get(key) if value is None else value
        if value is not None:
            changes[key] = int(value)
    model = cfg.get("model") or {}
    if model.get("in_channels") is not None:
        changes["in_channels"] = int(model["in_channels"])
    split = (cfg.get("data_loader") or {}).get("eval") or {}
    ds = split.get("dataset") or {}
    if ds.get("num_frames") is not None:
        changes["num_frames"] = int(ds["num_frames"])
    rate = ds.get("sampling_rate") if ds.get("sampling_rate") is not None else ds.get("downsample")
    if rate is not None:
        changes["sampling_rate"] = rate
    if "target_fps" in ds:  # null is a value here: the video's own frames
        changes["target_fps"] = ds["target_fps"]
    if ds.get("offset_sampling") is not None:
        changes["offset_sampling"] = bool(ds["offset_sampling"])
    ops = (split.get("map") or {}).get("operations")
    if isinstance(ops, list):
        changes["channel_order"] = "RGB"  # unless a ChannelOrder says otherwise (below)
        for op in ops:
            kind = op.get("type") if isinstance(op, Mapping) else None
            if kind == "Normalize":
                if op.get("mean") is not None:
                    changes["mean"] = tuple(float(v) for v in op["mean"])
                if op.get("std") is not None:
                    changes["std"] = tuple(float(v) for v in op["std"])
            elif kind == "Rescale" and op.get("value_range") is not None:
                changes["value_range"] = float(op["value_range"])
            elif kind == "ChannelOrder":
                changes["channel_order"] = op.get("order") or dc.channel_order
    return dc.replace(**changes) if changes else dc


__all__ = ["resolve_geometry", "GeometryError", "TRAIN_CROP_OPS", "DataConfig", "resolve_data_config"]
