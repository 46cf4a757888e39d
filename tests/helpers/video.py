"""Encode tiny test videos with PyAV, so tests need no downloaded data."""
from __future__ import annotations

import os
from typing import Optional

import numpy as np


def frame_pattern(num_frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """(T, H, W, 3) uint8 frames whose frame ``t`` is identifiable: a bright bar at column
    ``t mod width`` on a smooth random background (survives lossy coding)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 120, size=(1, 1, 1, 3)).astype(np.uint8)
    clip = np.repeat(np.repeat(np.repeat(base, num_frames, 0), height, 1), width, 2).copy()
    for t in range(num_frames):
        clip[t, :, (t * 2) % width] = 255
    return clip


def encode_video(path: str, frames: np.ndarray, fps: int = 25, codec: Optional[str] = None) -> str:
    """Write ``frames`` (T, H, W, 3) uint8 to ``path`` (container from the extension; codec
    h264 for mp4/mkv, mpeg4 for avi, vp8/libvpx for webm). Even sizes are required by h264."""
    import av

    ext = os.path.splitext(path)[1].lower()
    codec = codec or {".avi": "mpeg4", ".webm": "libvpx"}.get(ext, "libx264")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    t, h, w, _ = frames.shape
    with av.open(path, "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "18"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def tiny_video(path: str, num_frames: int = 24, height: int = 32, width: int = 48,
               seed: int = 0, fps: int = 25) -> str:
    """Encode a small patterned video (see :func:`frame_pattern`) to ``path``."""
    return encode_video(path, frame_pattern(num_frames, height, width, seed), fps=fps)
