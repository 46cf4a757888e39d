"""View aggregation and metrics on a case computed by hand."""
import numpy as np
import pytest

from src.engine.metrics import ViewAggregator, classification_metrics, topk_accuracy


def test_views_are_averaged_per_video_and_metrics_follow():
    # 3 videos x 2 views, 3 classes; per-view probabilities chosen by hand
    views = np.array([[0.6, 0.3, 0.1],   # video 0, label 0
                      [0.2, 0.5, 0.3],   # video 0 -> mean (0.4, 0.4, 0.2): argmax 0 (first of the tie)
                      [0.1, 0.1, 0.8],   # video 1, label 1
                      [0.1, 0.3, 0.6],   # video 1 -> mean (0.1, 0.2, 0.7): predicted 2, label 1 second
                      [0.0, 0.9, 0.1],   # video 2, label 1
                      [0.2, 0.6, 0.2]])  # video 2 -> mean (0.1, 0.75, 0.15): correct
    video_idx = np.array([0, 0, 1, 1, 2, 2])
    labels = np.array([0, 0, 1, 1, 1, 1])
    agg = ViewAggregator(num_videos=4, num_classes=3)   # video 3 got no views (unreadable)
    agg.add(views[:3], video_idx[:3], labels[:3])       # views may arrive in any batches
    agg.add(views[3:], video_idx[3:], labels[3:])
    ids, scores, y = agg.result()
    assert ids.tolist() == [0, 1, 2]
    np.testing.assert_allclose(scores, [[0.4, 0.4, 0.2], [0.1, 0.2, 0.7], [0.1, 0.75, 0.15]])
    m = classification_metrics(scores, y, 3, ["a", "b", "c"])
    assert m["top1"] == pytest.approx(2 / 3)
    assert topk_accuracy(scores, y, 2) == pytest.approx(1.0)
    assert m["top5"] == pytest.approx(1.0)
    assert m["per_class_accuracy"] == {"a": 1.0, "b": 0.5, "c": None}   # class c has no videos
    assert m["mean_class_accuracy"] == pytest.approx(0.75)
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 1, 1], [0, 0, 0]]


def test_merging_shards_equals_one_aggregator():
    rng = np.random.default_rng(0)
    s, v, y = rng.random((10, 4)), rng.integers(0, 5, 10), np.zeros(10, int)
    whole = ViewAggregator(5, 4)
    whole.add(s, v, y)
    a, b = ViewAggregator(5, 4), ViewAggregator(5, 4)
    a.add(s[:6], v[:6], y[:6])
    b.add(s[6:], v[6:], y[6:])
    a.merge(b)
    np.testing.assert_allclose(a.result()[1], whole.result()[1])
