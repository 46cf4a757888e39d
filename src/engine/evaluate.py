"""Running a network over an eval loader: per-view probabilities -> per-video means -> metrics."""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np
from mindspore import Tensor, nn

from ..data.pipeline import stop_guard
from .inference import as_probabilities, run_fixed_batch
from .metrics import ViewAggregator, classification_metrics


def score_loader(net: nn.Cell, loader: Any, *, eval_output: str, progress: bool = False,
                 desc: str = "eval") -> ViewAggregator:
    """Class probabilities of every view of ``loader`` (columns video, label, video_idx,
    view_idx), averaged per video. ``eval_output`` says what ``net`` returns (the model record's:
    logits get a softmax per view, :func:`~src.engine.inference.as_probabilities`).

    The last, smaller batch is padded (``run_fixed_batch``) so graph mode compiles one shape.
    """
    net.set_train(False)
    agg = ViewAggregator(loader.num_videos, loader.num_classes)
    batches = stop_guard(loader.dataset.create_tuple_iterator(num_epochs=1, output_numpy=True), loader)
    bar = _bar(loader.steps_per_epoch, desc) if progress else None
    for video, label, video_idx, _view in batches:
        agg.add(as_probabilities(run_fixed_batch(net, video, loader.batch_size), eval_output), video_idx, label)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return agg


def evaluate(net: nn.Cell, loader: Any, *, class_names: Optional[Sequence[str]] = None,
             progress: bool = False, desc: str = "eval") -> Dict[str, Any]:
    """top-1/top-5/mean class accuracy (and more) of ``net`` (a zoo model) on ``loader``'s videos."""
    agg = score_loader(net, loader, eval_output=net.eval_output, progress=progress, desc=desc)
    _, scores, labels = agg.result()
    return classification_metrics(scores, labels, loader.num_classes, class_names or loader.class_names)


def _bar(total: int, desc: str):
    from tqdm import tqdm
    # disable=None: shown on a terminal only (a redirected log gets no carriage-return lines)
    return tqdm(total=total, desc=desc, unit="batch", leave=False, dynamic_ncols=True, disable=None)
