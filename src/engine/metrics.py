"""Multi-view score aggregation and classification metrics.

Scores arrive as one probability vector per view (the network's output made probabilities by
:func:`src.engine.inference.as_probabilities`), and views are combined by averaging those vectors
per video: SlowFast's 30-view test for X3D, the Efficient-3DCNNs ``test.py`` rule (softmax per
clip, then the mean) for the others. No softmax is applied here.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np


class ViewAggregator:
    """Accumulates per-view scores and averages them per video."""

    def __init__(self, num_videos: int, num_classes: int) -> None:
        self.sums = np.zeros((num_videos, num_classes), np.float64)
        self.counts = np.zeros(num_videos, np.int64)
        self.labels = np.full(num_videos, -1, np.int64)

    def add(self, scores: np.ndarray, video_idx: np.ndarray, labels: np.ndarray) -> None:
        """Add views; rows with ``video_idx < 0`` (a video that failed to decode) are skipped."""
        scores = np.asarray(scores, np.float64)
        video_idx = np.asarray(video_idx, np.int64).reshape(-1)
        if scores.ndim != 2 or scores.shape[0] != video_idx.shape[0]:
            raise ValueError(f"scores must be (views, classes) matching video_idx, got {scores.shape} and "
                             f"{video_idx.shape}")
        keep = video_idx >= 0
        scores, video_idx, labels = scores[keep], video_idx[keep], np.asarray(labels, np.int64).reshape(-1)[keep]
        np.add.at(self.sums, video_idx, scores)
        np.add.at(self.counts, video_idx, 1)
        self.labels[video_idx] = labels

    def merge(self, other: "ViewAggregator") -> None:
        """Combine with another shard's aggregator (distributed evaluation)."""
        self.sums += other.sums
        self.counts += other.counts
        seen = other.labels >= 0
        self.labels[seen] = other.labels[seen]

    def result(self):
        """(video_ids, mean scores, labels) of the videos that received at least one view."""
        ids = np.nonzero(self.counts > 0)[0]
        return ids, self.sums[ids] / self.counts[ids, None], self.labels[ids]


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of rows whose label is among the ``k`` highest scores (ties broken by index)."""
    if len(labels) == 0:
        return 0.0
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == np.asarray(labels)[:, None], axis=1)))


def classification_metrics(scores: np.ndarray, labels: np.ndarray, num_classes: int,
                           class_names: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """top-1, top-5, mean class accuracy, per-class accuracy and the confusion matrix."""
    from sklearn.metrics import confusion_matrix

    labels = np.asarray(labels, np.int64)
    pred = np.argmax(scores, axis=1) if len(labels) else np.zeros(0, np.int64)
    cm = confusion_matrix(labels, pred, labels=list(range(num_classes)))
    support = cm.sum(axis=1)
    per_class = np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)
    names: List[str] = list(class_names) if class_names else [str(i) for i in range(num_classes)]
    return {
        "num_videos": int(len(labels)),
        "top1": topk_accuracy(scores, labels, 1),
        "top5": topk_accuracy(scores, labels, 5),
        "mean_class_accuracy": float(np.nanmean(per_class)) if np.any(support > 0) else 0.0,
        "per_class_accuracy": {names[i]: (None if np.isnan(a) else float(a)) for i, a in enumerate(per_class)},
        "confusion_matrix": cm.tolist(),
    }
