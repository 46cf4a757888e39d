"""MindRecord pre-packing: decode each video once into JPEG frames stored in a MindRecord file,
and the registered data set ``MindRecordVideo`` that samples clips from it (the MindSpore
counterpart of the TF X3D's TFRecord option).

One record per video: ``video_idx``, ``label``, ``num_frames``, ``fps``, ``path`` (the source),
``offsets`` (int64, num_frames + 1 byte offsets) and ``frames`` (the concatenated JPEGs). A JSON
side file ``<file>.json`` holds the class names and the per-video index, so opening the data set
reads no frames; a clip is read by ``video_idx`` (``MindPage``) and only its frames are decoded.
"""
from __future__ import annotations

import io
import json
import logging
import os
from typing import Callable, List, Optional

import numpy as np
from PIL import Image

from ..registry import DATASETS
from .datasets import VideoDataset
from .decode import VideoReader
from .errors import DataError, VideoDecodeError
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
            with VideoReader(path, decoder) as vr:
                frames, fps = vr.get_frames(range(vr.num_frames)), vr.fps
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
    ``video_paths`` are the original source paths; ``decoder`` is not used."""

    def __init__(self, file: str, num_frames: int, sampling_rate: float, num_clips: int = 1,
                 target_fps: Optional[float] = None, output_dir: Optional[str] = None) -> None:
        super().__init__(num_frames=num_frames, sampling_rate=sampling_rate, num_clips=num_clips,
                         target_fps=target_fps, output_dir=output_dir)
        self.file = file
        meta = file + ".json"
        if not os.path.isfile(file) or not os.path.isfile(meta):
            raise DataError(f"MindRecordVideo: '{file}' or its index '{meta}' not found "
                            f"(write them with python -m src.tools.pack_mindrecord)")
        with open(meta, encoding="utf-8") as f:
            info = json.load(f)
        self.class_names: List[str] = list(info["class_names"])
        self.samples = [(p, int(l)) for p, l, _, _ in info["videos"]]
        self._frames = [int(n) for _, _, n, _ in info["videos"]]
        self._fps = [float(r) for _, _, _, r in info["videos"]]
        self._page = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_page"] = None  # reopened in each worker process
        return state

    def _record(self, index: int) -> dict:
        if self._page is None:
            from mindspore.mindrecord import MindPage

            self._page = MindPage(self.file)
            self._page.category_field = "video_idx"
        rows = self._page.read_at_page_by_name(str(index), 0, 1)
        if not rows:
            raise VideoDecodeError(f"{self.file}#{index}", "record not found")
        return rows[0]

    def load_clip(self, index: int, clip_idx: Optional[int] = None,
                  rng: Optional[np.random.Generator] = None, decoder: str = "decord",
                  min_frames: int = 1) -> np.ndarray:
        n = self._frames[index]
        name = f"{self.file}#{index} ({self.samples[index][0]})"
        if n < min_frames:
            raise VideoDecodeError(name, f"too short: {n} frames, need {min_frames}")
        idx = self.clip_indices(n, self._fps[index], clip_idx, rng)
        rec = self._record(index)
        blob, off = rec["frames"], rec["offsets"]
        try:
            return np.stack([np.asarray(Image.open(io.BytesIO(blob[off[i]:off[i + 1]])).convert("RGB"))
                             for i in idx])
        except Exception as e:  # a damaged record
            raise VideoDecodeError(name, f"cannot decode JPEG: {e}") from None
