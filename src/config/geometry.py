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
* ``infer.short_side`` / ``infer.crop_size`` (the test views)
"""
from __future__ import annotations

import copy
import inspect
from typing import Any, Dict, List, Optional

from . import ConfigError

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
    infer = cfg.get("infer")
    if isinstance(infer, dict):
        _fill(infer, "short_side", rec.test_short_side)
        _fill(infer, "crop_size", rec.test_crop_size)
    return cfg


def model_record(cfg: Any) -> Optional[Any]:
    """The resolved :class:`PretrainedCfg` of a (loaded) config's model section."""
    from ..config import to_dict
    from ..models import resolve_pretrained_cfg
    model = to_dict(cfg["model"])
    return resolve_pretrained_cfg(model["type"], model)


__all__ = ["resolve_geometry", "model_record", "GeometryError", "TRAIN_CROP_OPS"]
