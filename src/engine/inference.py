"""The one inference loader: evaluation, inference, export and the benchmark all get their network here.

    model = load_inference_model(cfg, ckpt="best.ckpt")          # build, load once, eval, fold BN
    model = load_inference_model(cfg, mindir="x3d_xs.mindir")    # or an exported graph
    probs = model.predict(views)                                 # (V, classes) probabilities

A checkpoint is read once (weights and metadata: class names, training config). ``fold_bn``
folds every BatchNorm into the convolution before it (same scores, fewer ops; see
``src/models/fold.py``). ``impls`` picks layer formulations before the network is built, through
the layer policy's ``use_impl`` (the exporter asks for portable ones: an AOT ``ops.Custom`` kernel
cannot live in an ONNX file, nor in a MINDIR meant for another machine).

One output contract: a network's eval-mode output is what its model record's ``eval_output``
says (X3D: probabilities; Efficient-3DCNNs: logits). :func:`as_probabilities` turns each view's
output into class probabilities (a softmax per view for logits), so everything that shows or
combines scores (multi-view and video-level averages, top-k, timelines, streams) works on
per-view probabilities for every family: X3D's views are averaged as SlowFast averages them,
the Efficient-3DCNNs views as their ``test.py`` does (softmax per clip, then the mean).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, ContextManager, Dict, List, Optional, Sequence, Tuple

import numpy as np
import mindspore as ms
from mindspore import Tensor, nn

from ..config.geometry import DataConfig, resolve_data_config
from ..errors import UserError
from ..models import kernels
from .checkpoint import ema_weights, load_params, read_checkpoint

METADATA_KEY = "video_classifier"  # MINDIR user_info / ONNX metadata_props key of export_metadata()
METADATA_VERSION = 1


@dataclass
class InferenceModel:
    """A network ready for inference plus what it came with."""
    net: Any                              # nn.Cell (checkpoint) or nn.GraphCell (MINDIR)
    weights: str                          # the file it was loaded from
    kind: str                             # "checkpoint" | "mindir"
    num_classes: int
    batch_size: int = 1                   # fixed batch of predict() (one graph compilation)
    class_names: Optional[List[str]] = None  # the checkpoint's label map, when it has one
    meta: Dict[str, Any] = field(default_factory=dict)
    eval_output: str = "probabilities"    # what the network returns: "probabilities" | "logits"
    data_config: Optional[DataConfig] = None  # the clips it takes (resolve_data_config)

    def predict(self, views: np.ndarray) -> np.ndarray:
        """(V, num_classes) class probabilities (float64) of (V, C, T, H, W) float32 views, one
        per view, in batches of ``batch_size`` (the last one padded)."""
        out = []
        for i in range(0, len(views), self.batch_size):
            scores = run_fixed_batch(self.net, views[i:i + self.batch_size], self.batch_size)
            if scores.ndim != 2 or scores.shape[1] != self.num_classes:
                raise UserError(f"{self.weights}: model output shape {scores.shape}, expected (N, {self.num_classes})")
            out.append(as_probabilities(scores, self.eval_output))
        return np.concatenate(out)


def as_probabilities(scores: np.ndarray, eval_output: str) -> np.ndarray:
    """Per-row class probabilities (float64) of eval-mode network outputs: a softmax over the
    last axis for ``"logits"``, the values as they are for ``"probabilities"``."""
    scores = np.asarray(scores, np.float64)
    if eval_output == "probabilities":
        return scores
    if eval_output != "logits":
        raise ValueError(f"eval_output must be 'probabilities' or 'logits', got {eval_output!r}")
    shifted = scores - scores.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def eval_output_of(model_cfg: Any) -> str:
    """The ``eval_output`` of a config's model section (from its record; nothing is built)."""
    return resolve_data_config(model_cfg).eval_output


def run_fixed_batch(net: Any, video: np.ndarray, batch_size: int) -> np.ndarray:
    """Scores of up to ``batch_size`` clips, padded to exactly ``batch_size`` rows so a graph (or
    a MINDIR with a fixed batch) sees one shape; eval-mode BN makes padded rows harmless."""
    n = video.shape[0]
    if n < batch_size:
        video = np.concatenate([video, np.zeros((batch_size - n,) + video.shape[1:], video.dtype)])
    return net(Tensor(np.ascontiguousarray(video, np.float32))).asnumpy()[:n]


def layer_impls(**impls: Optional[str]) -> ContextManager[None]:
    """Build layers with these formulations (``channelwise=``, ``spatial=`` ...) inside the block:
    the layer policy's :func:`src.models.layers.use_impl`, under the name this module exported."""
    from ..models.layers import use_impl
    return use_impl(**impls)


def build_eval_net(model_cfg: Any, params: Optional[Dict[str, Any]] = None, *, source: str = "",
                   fold_bn: bool = True, impls: Optional[Dict[str, str]] = None) -> nn.Cell:
    """Build ``model_cfg``, load ``params`` (already read), eval mode, optionally fold BatchNorm."""
    from ..models import build_model, fold_batchnorm
    from ..models.layers import use_impl
    with use_impl(**(impls or {})):
        net = build_model(model_cfg)
    if params is not None:
        load_params(net, params, source=source)
    net.set_train(False)
    if fold_bn:
        fold_batchnorm(net)
    return net


def load_inference_model(cfg: Any, *, ckpt: Optional[str] = None, mindir: Optional[str] = None,
                         fold_bn: Optional[bool] = None, batch_size: Optional[int] = None,
                         impls: Optional[Dict[str, str]] = None, section: str = "infer",
                         config_data: bool = True, ema: bool = False) -> InferenceModel:
    """The network of ``cfg.model`` with the weights of ``ckpt``, or the graph of ``mindir``.

    ``fold_bn`` defaults to ``cfg.infer.fold_bn``; ``batch_size`` to ``cfg.infer.batch_size`` (a
    MINDIR exported with a fixed batch runs at that batch). ``data_config`` is
    :func:`~src.config.geometry.resolve_data_config` of the network's record (a MINDIR's own
    metadata when it has some, else ``cfg.model``'s) with ``cfg``'s values (views of ``section``)
    over it; ``config_data=False`` (a MINDIR used without a config of its own) takes the file's
    metadata alone. A MINDIR exported for another clip shape than that is refused in one line
    before it is loaded. ``ema``: the EMA weights of a training checkpoint (``ema.*``, train.ema)
    instead of its raw ones; one-line error when it has none, or with a MINDIR.
    """
    if (ckpt is None) == (mindir is None):
        raise UserError("give exactly one of a checkpoint (--ckpt) or a MINDIR file (--mindir)")
    infer = cfg["infer"] if "infer" in cfg else {}
    fold = bool(infer.get("fold_bn", True)) if fold_bn is None else bool(fold_bn)
    bs = max(1, int(batch_size or infer.get("batch_size", 1)))
    if mindir is not None:
        if ema:
            raise UserError(f"{mindir}: --ema needs a training checkpoint (--ckpt); a MINDIR holds one set of weights")
        if not os.path.isfile(mindir):
            raise UserError(f"{mindir}: MINDIR file not found")
        missing = [lib for lib in kernels.libraries_in_graph(mindir) if not os.path.isfile(lib)]
        if missing:
            raise UserError(f"{mindir}: exported with --conv-impl cpp, it needs the C++ kernel library "
                            f"{missing[0]}, which is not on this machine; export the checkpoint again here "
                            f"(--conv-impl cpp) or as a portable file (--conv-impl banded)")
        exported, meta = read_mindir_info(mindir)
        if meta is None and not config_data:
            raise UserError(f"{mindir}: the file carries no class names or clip geometry (exported before "
                            f"they were stored); pass the --config it was exported with, or export it again")
        record = DataConfig.from_dict(meta["data_config"]) if meta else cfg["model"]
        data = resolve_data_config(record, cfg if config_data else None, section=section)
        check_mindir_geometry(mindir, exported, data.input_size)
        if exported and exported[0] > 0:  # a fixed batch: every call must have exactly that many rows
            bs = int(exported[0])
        try:
            net = nn.GraphCell(ms.load(mindir))
        except Exception as e:  # MindSpore raises RuntimeError/ValueError with long texts
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"{mindir}: not a loadable MINDIR graph ({first})") from None
        num_classes = int(meta["num_classes"]) if meta else int(cfg["model"]["num_classes"])
        names = list((meta or {}).get("class_names") or []) or None
        return InferenceModel(net=net, weights=mindir, kind="mindir", num_classes=num_classes, batch_size=bs,
                              class_names=names, meta=meta or {}, eval_output=data.eval_output, data_config=data)
    params, meta = read_checkpoint(ckpt)
    if ema:
        params = ema_weights(params, source=ckpt)
    net = build_eval_net(cfg["model"], params, source=ckpt, fold_bn=fold, impls=impls)
    data = resolve_data_config(net, cfg, section=section)
    return InferenceModel(net=net, weights=ckpt, kind="checkpoint", num_classes=int(cfg["model"]["num_classes"]),
                          batch_size=bs, class_names=list(meta.get("class_names") or []) or None, meta=meta,
                          eval_output=net.eval_output, data_config=data)


# ----------------------------------------------------------------------------- exported files
def export_metadata(data: DataConfig, *, model: str, num_classes: int, class_names: Optional[Sequence[str]],
                    input_shape: Sequence[Optional[int]]) -> Dict[str, Any]:
    """What an exported file says about itself (stored as JSON under :data:`METADATA_KEY`: a
    MINDIR's ``user_info``, an ONNX file's ``metadata_props``): the model name, class count and
    names (None: unknown), the input shape (-1: a dynamic batch) and the clips it takes
    (:class:`DataConfig`: frames, sampling rate, short side, crop, mean/std, value range, channel
    order, ``eval_output``), so ``infer.py --mindir FILE`` needs no config and no label map."""
    names = [str(n) for n in class_names] if class_names else None
    if names is not None and len(names) != int(num_classes):
        raise UserError(f"{len(names)} class names for a model of {num_classes} classes")
    return {"version": METADATA_VERSION, "model": str(model), "num_classes": int(num_classes), "class_names": names,
            "input_shape": [-1 if d is None else int(d) for d in input_shape],
            "eval_output": data.eval_output, "data_config": data.to_dict()}


def parse_metadata(text: Optional[str], source: str) -> Optional[Dict[str, Any]]:
    """The metadata of :func:`export_metadata` from its JSON text (None: the file has none); a
    broken or newer record is one line naming ``source``."""
    import json
    if not text:
        return None
    try:
        meta = json.loads(text)
        DataConfig.from_dict(meta["data_config"])
        ok = isinstance(meta, dict) and int(meta["num_classes"]) > 0
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise UserError(f"{source}: unreadable {METADATA_KEY} metadata; export the file again")
    if int(meta.get("version", 0)) > METADATA_VERSION:
        raise UserError(f"{source}: metadata version {meta['version']} is newer than this code reads "
                        f"({METADATA_VERSION}); update the code or pass --config")
    return meta


def read_mindir_info(path: str) -> Tuple[Optional[Tuple[int, ...]], Optional[Dict[str, Any]]]:
    """``(input shape, metadata)`` of a MINDIR file, read from its protobuf without running it:
    the graph's single input (``-1`` for a dynamic dimension; None when it does not say) and the
    :func:`export_metadata` record in its ``user_info`` (None: none)."""
    try:
        from mindspore.train import mind_ir_pb2
        model = mind_ir_pb2.ModelProto()
        with open(path, "rb") as f:
            model.ParseFromString(f.read())
    except Exception:  # unreadable: mindspore.load reports it in one line
        return None, None
    inputs = list(model.graph.input)
    shape = None
    if len(inputs) == 1 and inputs[0].tensor:
        shape = tuple(int(d) for d in inputs[0].tensor[0].dims)
    return shape, parse_metadata(model.user_info.get(METADATA_KEY), path)


def mindir_input_shape(path: str) -> Optional[Tuple[int, ...]]:
    """The input shape a MINDIR file was exported for, ``-1`` for a dynamic dimension (the batch
    of a ``--batch dynamic`` export), read from its graph's single input without running it;
    None when the file does not say (not a MINDIR, several inputs): then nothing is checked."""
    try:
        return read_mindir_info(path)[0]
    except UserError:  # broken metadata does not hide the shape
        return None


def config_clip_shape(cfg: Any, section: str = "infer") -> Optional[Tuple[int, int, int, int]]:
    """(C, T, H, W) of the clips inference feeds the network under ``cfg``
    (:func:`~src.config.geometry.resolve_data_config` of its model); None when the config does
    not say."""
    try:
        return resolve_data_config(cfg["model"], cfg, section=section).input_size
    except (KeyError, TypeError, ValueError, UserError):
        return None


def check_mindir_geometry(path: str, exported: Optional[Sequence[int]],
                          expected: Optional[Tuple[int, int, int, int]]) -> None:
    """Refuse, before anything runs, a MINDIR exported for other clips than the config makes
    (the framework would fail deep inside with a Reshape error). The batch dimension and any
    dynamic (-1) dimension match anything."""
    if exported is None or expected is None:
        return
    clip = tuple(exported[1:])
    if len(clip) == len(expected) and all(g in (-1, e) for g, e in zip(clip, expected)):
        return
    raise UserError(f"{path}: exported for input {clip} (C, T, H, W) but the config gives {expected}; "
                    f"export again or pass the config it was exported with")


def topk(probs: np.ndarray, k: int, class_names: Sequence[str]) -> List[Dict[str, Any]]:
    """The ``k`` best classes of one probability vector: ``[{label, name, prob}, ...]`` (stable order)."""
    order = np.argsort(-np.asarray(probs), kind="stable")[:max(1, min(int(k), len(probs)))]
    return [{"label": int(i), "name": class_names[i], "prob": float(probs[i])} for i in order]


__all__ = ["InferenceModel", "load_inference_model", "build_eval_net", "run_fixed_batch", "layer_impls", "topk",
           "as_probabilities", "eval_output_of", "mindir_input_shape", "config_clip_shape", "check_mindir_geometry",
           "export_metadata", "parse_metadata", "read_mindir_info", "METADATA_KEY", "DataConfig",
           "resolve_data_config"]
