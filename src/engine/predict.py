"""Single-video prediction: clip planning, class names and the :class:`VideoPredictor`.

A video is scored as the evaluation does it: ``infer.num_clips`` clips of the model's own
``num_frames`` x ``sampling_rate`` spread uniformly over the whole video, each cut into
``infer.num_crops`` spatial crops; the class probabilities of all views are averaged. The network
(checkpoint in eval mode, or an exported MINDIR) already returns probabilities, so no softmax is
applied here. An optional timeline scores one centred clip per window of ``window_seconds``.
"""
from __future__ import annotations

import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..data import (VideoDecodeError, VideoReader, build_transforms, eval_clip_indices,
                    infer_operations, load_label_map)
from ..data.errors import DataError
from ..data.sampling import clip_offsets, frame_step
from .inference import load_inference_model, topk as top_classes

KINETICS400_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                                "kinetics400_classes.txt")


# ----------------------------------------------------------------------------- clip planning
def plan_clips(video_frames: int, num_frames: int, sampling_rate: float, num_clips: int,
               fps: Optional[float] = None, target_fps: Optional[float] = None) -> np.ndarray:
    """(num_clips, num_frames) frame indices: ``num_clips`` clips spread over the whole video.

    Each clip spans ``(num_frames - 1) * step + 1`` frames; indices of a video shorter than
    that are clamped to its last frame (the eval sampling, so inference matches evaluation).
    """
    if video_frames <= 0:
        raise ValueError(f"video has no frames ({video_frames})")
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    return np.stack([eval_clip_indices(video_frames, num_frames, sampling_rate, num_clips, k, fps, target_fps)
                     for k in range(num_clips)])


def plan_windows(video_frames: int, fps: float, window_seconds: float, num_frames: int,
                 sampling_rate: float, target_fps: Optional[float] = None
                 ) -> List[Tuple[float, float, np.ndarray]]:
    """Timeline windows ``(start_s, end_s, clip_indices)``: consecutive windows of
    ``window_seconds`` covering the video (the last one may be shorter), one clip centred in
    each. Empty when ``window_seconds <= 0`` or the frame rate is unknown."""
    if window_seconds <= 0 or fps <= 0 or video_frames <= 0:
        return []
    offsets = clip_offsets(num_frames, frame_step(sampling_rate, fps, target_fps))
    span = int(offsets[-1]) + 1
    duration = video_frames / fps
    count = max(1, math.ceil(duration / window_seconds - 1e-9))
    out = []
    for w in range(count):
        t0, t1 = w * window_seconds, min((w + 1) * window_seconds, duration)
        centre = (t0 + t1) / 2 * fps
        start = int(round(centre - (span - 1) / 2))
        start = min(max(start, 0), max(video_frames - span, 0))
        idx = np.clip(start + offsets, 0, video_frames - 1).astype(np.int64)
        out.append((round(t0, 3), round(t1, 3), idx))
    return out


# ----------------------------------------------------------------------------- class names
def read_class_names(path: str) -> List[str]:
    """Class names from a label map: JSON (see :mod:`src.data.labels`) or plain text, one per line."""
    if not path.lower().endswith(".txt"):
        return load_label_map(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: label map not found")
    with open(path, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    if len(set(names)) != len(names):
        raise DataError(f"{path}: duplicate class names in label map")
    return names


def kinetics400_classes() -> List[str]:
    """The 400 Kinetics-400 class names in the standard index order (alphabetical)."""
    return read_class_names(KINETICS400_FILE)


def resolve_class_names(num_classes: int, label_map: Optional[str] = None,
                        checkpoint_names: Optional[Sequence[str]] = None) -> Tuple[List[str], str]:
    """``(names, source)`` by priority: ``label_map`` file > the checkpoint's own label map >
    Kinetics-400 when ``num_classes == 400`` > ``"class N"``. A label map file of the wrong
    length is an error; a checkpoint label map of the wrong length is ignored."""
    if label_map:
        names = read_class_names(label_map)
        if len(names) != num_classes:
            raise DataError(f"{label_map}: label map has {len(names)} names, the model has {num_classes} classes")
        return names, label_map
    if checkpoint_names and len(checkpoint_names) == num_classes:
        return [str(n) for n in checkpoint_names], "checkpoint"
    if num_classes == 400:
        return kinetics400_classes(), "kinetics400"
    return [f"class {i}" for i in range(num_classes)], "index"


# ----------------------------------------------------------------------------- predictor
class VideoPredictor:
    """Scores videos with a checkpoint (``ckpt``) or an exported MINDIR graph (``mindir``).

    ``cfg`` supplies the model, clip shape (``data_loader.eval.dataset.num_frames`` /
    ``sampling_rate`` / ``target_fps``), views and batch size (``infer``) and the decoder.
    The MindSpore context must already be set (:func:`src.context.init_context`).
    """

    def __init__(self, cfg: Any, *, ckpt: Optional[str] = None, mindir: Optional[str] = None,
                 label_map: Optional[str] = None) -> None:
        self.cfg = cfg
        ds = cfg.data_loader.eval.dataset  # geometry resolved against the model (src/config/geometry.py)
        self.num_frames = int(ds.num_frames)
        self.sampling_rate = float(ds.sampling_rate)
        self.target_fps = ds.get("target_fps")
        self.num_clips = int(cfg.infer.num_clips)
        self.num_crops = int(cfg.infer.num_crops)
        self.crop_size = int(cfg.infer.crop_size)
        self.num_classes = int(cfg.model.num_classes)
        self.backend = str(cfg.data_loader.get("decoder", "decord"))
        self.transform = build_transforms(infer_operations(cfg))
        # one fixed batch shape -> one graph compilation per predictor
        batch = max(1, min(int(cfg.infer.batch_size), self.num_clips * self.num_crops))
        self.model = load_inference_model(cfg, ckpt=ckpt, mindir=mindir, batch_size=batch)
        self.net, self.weights, self.batch_size = self.model.net, self.model.weights, batch
        self.class_names, self.names_source = resolve_class_names(self.num_classes, label_map,
                                                                  self.model.class_names)

    def _views(self, frames: np.ndarray) -> List[np.ndarray]:
        return [self.transform(frames, crop_index=c) for c in range(self.num_crops)]

    def _topk(self, probs: np.ndarray, k: int) -> List[Dict[str, Any]]:
        return top_classes(probs, k, self.class_names)

    # -- one video
    def predict(self, path: str, *, topk: int = 5, window_seconds: float = 0.0,
                return_frames: bool = False) -> Dict[str, Any]:
        """Top-k classes of ``path`` averaged over clips x crops, plus the timeline if
        ``window_seconds > 0``. Raises :class:`VideoDecodeError` for unreadable files.
        With ``return_frames`` the sampled frames (clips in time order) are in ``"frames"``."""
        with VideoReader(path, self.backend) as vr:
            n, fps = vr.num_frames, vr.fps
            clips = plan_clips(n, self.num_frames, self.sampling_rate, self.num_clips, fps, self.target_fps)
            windows = plan_windows(n, fps, window_seconds, self.num_frames, self.sampling_rate, self.target_fps)
            wanted = np.unique(np.concatenate([clips.reshape(-1)] + [w[2] for w in windows]))
            decoded = vr.get_frames(wanted)
        lookup = {int(f): i for i, f in enumerate(wanted)}

        def frames_of(idx: np.ndarray) -> np.ndarray:
            return decoded[[lookup[int(f)] for f in idx]]

        views = [v for clip in clips for v in self._views(frames_of(clip))]
        for _, _, idx in windows:
            views.extend(self._views(frames_of(idx)))
        probs = self.model.predict(np.stack(views))
        main = probs[:len(clips) * self.num_crops].mean(axis=0)
        result: Dict[str, Any] = {
            "path": path, "num_frames": int(n), "fps": round(float(fps), 3),
            "num_clips": int(len(clips)), "num_crops": self.num_crops,
            "clip_frames": self.num_frames, "sampling_rate": self.sampling_rate,
            "clips": clips.tolist(), "topk": self._topk(main, topk), "probs": main.tolist(),
        }
        if windows:
            timeline = []
            rest = probs[len(clips) * self.num_crops:]
            for w, (t0, t1, idx) in enumerate(windows):
                p = rest[w * self.num_crops:(w + 1) * self.num_crops].mean(axis=0)
                best = self._topk(p, 1)[0]
                timeline.append({"start": t0, "end": t1, "frames": [int(idx[0]), int(idx[-1])], **best})
            result["window_seconds"] = float(window_seconds)
            result["timeline"] = timeline
        if return_frames:
            result["frames"] = np.concatenate([frames_of(c) for c in clips])
        return result


__all__ = ["VideoPredictor", "plan_clips", "plan_windows", "read_class_names",
           "kinetics400_classes", "resolve_class_names", "VideoDecodeError", "KINETICS400_FILE"]
