"""Running a network over an eval loader: per-view scores -> per-video scores -> metrics."""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np
from mindspore import Tensor, nn

from .inference import run_fixed_batch
from .metrics import ViewAggregator, classification_metrics


def score_loader(net: nn.Cell, loader: Any, *, progress: bool = False, desc: str = "eval") -> ViewAggregator:
    """Eval-mode scores of every view of ``loader`` (columns video, label, video_idx, view_idx).

    The last, smaller batch is padded (``run_fixed_batch``) so graph mode compiles one shape.
    """
    net.set_train(False)
    agg = ViewAggregator(loader.num_videos, loader.num_classes)
    batches = loader.dataset.create_tuple_iterator(num_epochs=1, output_numpy=True)
    bar = _bar(loader.steps_per_epoch, desc) if progress else None
    for video, label, video_idx, _view in batches:
        agg.add(run_fixed_batch(net, video, loader.batch_size), video_idx, label)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return agg


def evaluate(net: nn.Cell, loader: Any, *, class_names: Optional[Sequence[str]] = None,
             progress: bool = False, desc: str = "eval") -> Dict[str, Any]:
    """top-1/top-5/mean class accuracy (and more) of ``net`` on ``loader``'s videos."""
    agg = score_loader(net, loader, progress=progress, desc=desc)
    _, scores, labels = agg.result()
    return classification_metrics(scores, labels, loader.num_classes, class_names or loader.class_names)


def _bar(total: int, desc: str):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="batch", leave=False, dynamic_ncols=True)
