"""The one inference loader: evaluation, inference, export and the benchmark all get their network here.

    model = load_inference_model(cfg, ckpt="best.ckpt")          # build, load once, eval, fold BN
    model = load_inference_model(cfg, mindir="x3d_xs.mindir")    # or an exported graph
    probs = model.predict(views)                                 # (V, classes) probabilities

A checkpoint is read once (weights and metadata: class names, training config). ``fold_bn``
folds every BatchNorm into the convolution before it (same scores, fewer ops; see
``src/models/fold.py``). ``layer_impls`` picks layer formulations before the network is built
(the exporter asks for portable ones: an AOT ``ops.Custom`` kernel cannot live in a MINDIR/ONNX).

One output contract: a network's eval-mode output is what its model record's ``eval_output``
says (X3D: probabilities; Efficient-3DCNNs: logits). :func:`as_probabilities` turns each view's
output into class probabilities (a softmax per view for logits), so everything that shows or
combines scores (multi-view and video-level averages, top-k, timelines, streams) works on
per-view probabilities for every family: X3D's views are averaged as SlowFast averages them,
the Efficient-3DCNNs views as their ``test.py`` does (softmax per clip, then the mean).
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np
import mindspore as ms
from mindspore import Tensor, nn

from ..errors import UserError
from ..models import kernels
from .checkpoint import load_params, read_checkpoint


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
    from ..config import to_dict
    from ..models import resolve_pretrained_cfg
    model = to_dict(model_cfg)
    return resolve_pretrained_cfg(model["type"], model).eval_output


def run_fixed_batch(net: Any, video: np.ndarray, batch_size: int) -> np.ndarray:
    """Scores of up to ``batch_size`` clips, padded to exactly ``batch_size`` rows so a graph (or
    a MINDIR with a fixed batch) sees one shape; eval-mode BN makes padded rows harmless."""
    n = video.shape[0]
    if n < batch_size:
        video = np.concatenate([video, np.zeros((batch_size - n,) + video.shape[1:], video.dtype)])
    return net(Tensor(np.ascontiguousarray(video, np.float32))).asnumpy()[:n]


@contextlib.contextmanager
def layer_impls(**impls: Optional[str]) -> Iterator[None]:
    """Build layers with these formulations (``channelwise=``, ``spatial=`` ...), then restore."""
    from ..models import layers
    wanted = {k: v for k, v in impls.items() if v is not None}
    saved = {k: layers._DEFAULT_IMPL[k] for k in wanted}
    layers.set_default_impl(**wanted)
    try:
        yield
    finally:
        layers.set_default_impl(**saved)


def build_eval_net(model_cfg: Any, params: Optional[Dict[str, Any]] = None, *, source: str = "",
                   fold_bn: bool = True, impls: Optional[Dict[str, str]] = None) -> nn.Cell:
    """Build ``model_cfg``, load ``params`` (already read), eval mode, optionally fold BatchNorm."""
    from ..models import build_model, fold_batchnorm
    with layer_impls(**(impls or {})):
        net = build_model(model_cfg)
    if params is not None:
        load_params(net, params, source=source)
    net.set_train(False)
    if fold_bn:
        fold_batchnorm(net)
    return net


def load_inference_model(cfg: Any, *, ckpt: Optional[str] = None, mindir: Optional[str] = None,
                         fold_bn: Optional[bool] = None, batch_size: Optional[int] = None,
                         impls: Optional[Dict[str, str]] = None) -> InferenceModel:
    """The network of ``cfg.model`` with the weights of ``ckpt``, or the graph of ``mindir``.

    ``fold_bn`` defaults to ``cfg.infer.fold_bn``; ``batch_size`` to ``cfg.infer.batch_size``.
    """
    if (ckpt is None) == (mindir is None):
        raise UserError("give exactly one of a checkpoint (--ckpt) or a MINDIR file (--mindir)")
    infer = cfg["infer"] if "infer" in cfg else {}
    fold = bool(infer.get("fold_bn", True)) if fold_bn is None else bool(fold_bn)
    bs = max(1, int(batch_size or infer.get("batch_size", 1)))
    num_classes = int(cfg["model"]["num_classes"])
    if mindir is not None:
        if not os.path.isfile(mindir):
            raise UserError(f"{mindir}: MINDIR file not found")
        missing = [lib for lib in kernels.libraries_in_graph(mindir) if not os.path.isfile(lib)]
        if missing:
            raise UserError(f"{mindir}: exported with --conv-impl custom, it needs the C++ kernel library "
                            f"{missing[0]}, which is not on this machine; export the checkpoint again here "
                            f"(--conv-impl custom) or as a portable file (--conv-impl fold)")
        try:
            net = nn.GraphCell(ms.load(mindir))
        except Exception as e:  # MindSpore raises RuntimeError/ValueError with long texts
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"{mindir}: not a loadable MINDIR graph ({first})") from None
        return InferenceModel(net=net, weights=mindir, kind="mindir", num_classes=num_classes, batch_size=bs,
                              eval_output=eval_output_of(cfg["model"]))
    params, meta = read_checkpoint(ckpt)
    net = build_eval_net(cfg["model"], params, source=ckpt, fold_bn=fold, impls=impls)
    return InferenceModel(net=net, weights=ckpt, kind="checkpoint", num_classes=num_classes, batch_size=bs,
                          class_names=list(meta.get("class_names") or []) or None, meta=meta,
                          eval_output=net.eval_output)


def topk(probs: np.ndarray, k: int, class_names: Sequence[str]) -> List[Dict[str, Any]]:
    """The ``k`` best classes of one probability vector: ``[{label, name, prob}, ...]`` (stable order)."""
    order = np.argsort(-np.asarray(probs), kind="stable")[:max(1, min(int(k), len(probs)))]
    return [{"label": int(i), "name": class_names[i], "prob": float(probs[i])} for i in order]


__all__ = ["InferenceModel", "load_inference_model", "build_eval_net", "run_fixed_batch", "layer_impls", "topk",
           "as_probabilities", "eval_output_of"]
