"""MindRecord pre-packing: decode each video once into JPEG frames stored in a MindRecord file,
and the registered data set ``MindRecordVideo`` that samples clips from it (the MindSpore
counterpart of the TF X3D's TFRecord option).

One record per video: ``video_idx``, ``label``, ``num_frames``, ``fps``, ``path`` (the source),
``offsets`` (int64, num_frames + 1 byte offsets) and ``frames`` (the concatenated JPEGs). A JSON
side file ``<file>.json`` holds the class names and the per-video index, so opening the data set
reads no frames; a clip is read by ``video_idx`` (``MindPage``) and only its frames are decoded, by
:class:`~src.data.readers.MindRecordReader` through the common
:meth:`~src.data.datasets.VideoDataset.load_clip`.
"""
from __future__ import annotations

import io
import json
import logging
import os
from typing import Callable, List, Optional, Sequence

import numpy as np
from PIL import Image

from ..registry import DATASETS
from .datasets import VideoDataset
from .errors import DataError, VideoDecodeError
from .readers import MindRecordFile, VideoFileReader
from .transforms import scale_short_side

logger = logging.getLogger("src.data")

SCHEMA = {"video_idx": {"type": "int32"}, "label": {"type": "int32"},
          "num_frames": {"type": "int32"}, "fps": {"type": "float32"},
          "path": {"type": "string"}, "offsets": {"type": "int64", "shape": [-1]},
          "frames": {"type": "bytes"}}


def _encode_jpegs(frames: np.ndarray, quality: int) -> tuple:
    chunks, offsets = [], [0]
    for f in frames:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="JPEG", quality=quality)
        chunks.append(buf.getvalue())
        offsets.append(offsets[-1] + len(chunks[-1]))
    return b"".join(chunks), np.asarray(offsets, np.int64)


def pack_mindrecord(dataset: VideoDataset, out_file: str, *, short_side: Optional[int] = None,
                    quality: int = 90, decoder: str = "decord",
                    progress: Optional[Callable] = None) -> dict:
    """Pack every readable video of ``dataset`` into ``out_file`` (+ ``out_file.json``).
    ``short_side`` resizes frames before JPEG coding (None keeps the size). Returns a summary
    ``{'videos': n, 'bad': [...], 'bytes': size}``; unreadable videos are skipped and listed."""
    from mindspore.mindrecord import FileWriter

    os.makedirs(os.path.dirname(os.path.abspath(out_file)), exist_ok=True)
    for p in (out_file, out_file + ".db"):
        if os.path.exists(p):
            os.remove(p)
    writer = FileWriter(out_file, shard_num=1, overwrite=True)
    writer.add_schema(SCHEMA, "x3d video frames")
    writer.add_index(["video_idx"])
    index, bad, rows = [], [], []
    items = list(enumerate(dataset.samples))
    for i, (path, label) in (progress(items) if progress else items):
        try:
            with VideoFileReader(path, decoder) as vr:
                frames, fps = vr.read(range(vr.num_frames)), vr.fps
        except VideoDecodeError as e:
            bad.append(str(e))
            logger.warning("pack_mindrecord: skipped %s", e)
            continue
        if short_side:
            frames = scale_short_side(frames, int(short_side))
        blob, offsets = _encode_jpegs(frames, quality)
        vid = len(index)
        rows.append({"video_idx": vid, "label": int(label), "num_frames": len(frames),
                     "fps": float(fps), "path": path, "offsets": offsets, "frames": blob})
        index.append([path, int(label), len(frames), float(fps)])
        if len(rows) >= 16:
            writer.write_raw_data(rows)
            rows = []
    if not index:
        raise DataError(f"pack_mindrecord: no readable video among {len(items)} ({bad[:1]})")
    if rows:
        writer.write_raw_data(rows)
    writer.commit()
    with open(out_file + ".json", "w", encoding="utf-8") as f:
        json.dump({"class_names": list(dataset.class_names), "videos": index, "bad": bad}, f)
    # disk use, not the apparent size: MindRecord pages are allocated sparsely
    size = sum(os.stat(p).st_blocks * 512 for p in (out_file, out_file + ".db"))
    return {"videos": len(index), "bad": bad, "bytes": size}


@DATASETS.register()
class MindRecordVideo(VideoDataset):
    """Clips from a file written by :func:`pack_mindrecord` (``src.tools.pack_mindrecord``).
    ``video_paths`` are the original source paths, read as records of the file
    (:class:`~src.data.readers.MindRecordFile`); ``decoder`` is not used. With ``class_names``
    (the train split's) a video's label is looked up by its class name in that list."""

    def __init__(self, file: str, num_frames: int, sampling_rate: float, num_clips: int = 1,
                 target_fps: Optional[float] = None, output_dir: Optional[str] = None,
                 class_names: Optional[Sequence[str]] = None, unknown_labels: str = "error",
                 config_key: Optional[str] = None) -> None:
        super().__init__(num_frames=num_frames, sampling_rate=sampling_rate, num_clips=num_clips,
                         target_fps=target_fps, output_dir=output_dir, class_names=class_names,
                         unknown_labels=unknown_labels, config_key=config_key)
        self.file = file
        meta = file + ".json"
        if not os.path.isfile(file) or not os.path.isfile(meta):
            raise DataError(f"MindRecordVideo: '{file}' or its index '{meta}' not found "
                            f"(write them with python -m src.tools.pack_mindrecord)")
        with open(meta, encoding="utf-8") as f:
            info = json.load(f)
        own: List[str] = [str(c) for c in info["class_names"]]
        self._use_classes(own, meta)
        kept = []  # (record id, label)
        for vid, (_, label, _, _) in enumerate(info["videos"]):
            if self.given_classes is None:
                kept.append((vid, int(label)))
                continue
            name = own[int(label)] if 0 <= int(label) < len(own) else str(label)
            index = self._label_of(name, f"{meta}: video {vid}")
            if index is not None:
                kept.append((vid, index))
        self._report_skipped()
        if not kept and self.unknown_skipped:
            raise DataError(f"{meta}: no videos left ({self.unknown_skipped} skipped for unknown labels)")
        videos = info["videos"]
        self.samples = [(videos[vid][0], label) for vid, label in kept]
        self.frame_counts = [int(videos[vid][2]) for vid, _ in kept]
        self.reader = MindRecordFile(file, videos)
