"""Prediction previews: the whole video annotated with the current window's top-k (MP4), or the
sampled frames with the top-1 label (GIF).

    input video --PyAV decode (one pass, src/data/decode.py)--> frame k (H, W, 3)
      [scaled to ``short_side`` by the transforms' short-side rule, even sizes]
      --label of the window that frame k is in (the latest window starting at or before it;
        the whole-video top-k without a timeline)--> text box drawn (PIL)
      --libx264 yuv420p at the input's frame rate--> OUT.mp4

Memory is one frame: the timeline is already known, so nothing is buffered.
"""
from __future__ import annotations

import bisect
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..data.decode import FrameIterator, one_line
from ..data.errors import VideoDecodeError
from ..data.transforms import resize_clip, short_side_size
from ..outputs import atomic_write


def _font(size: int) -> Any:
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def draw_text(img: Any, lines: Sequence[str], font: Any, pad: int = 4) -> None:
    """Yellow ``lines`` on a black box in the top-left corner of a PIL image (in place)."""
    from PIL import ImageDraw

    draw = ImageDraw.Draw(img)
    text = "\n".join(lines)
    box = draw.multiline_textbbox((pad, pad), text, font=font)
    draw.rectangle((0, 0, box[2] + pad // 2, box[3] + pad // 2), fill=(0, 0, 0))
    draw.multiline_text((pad, pad), text, fill=(255, 255, 0), font=font)


def label_lines(topk: Sequence[Dict[str, Any]], name: Optional[str] = None, head: str = "") -> List[str]:
    """``head`` then one ``name prob`` line per class (``name`` overrides the first, e.g. "uncertain")."""
    lines = [head] if head else []
    for i, t in enumerate(topk):
        line = f"{t['name']} {t['prob']:.2f}"
        if i == 0 and name and name != t["name"]:
            line = f"{name} ({line})"
        lines.append(line)
    return lines


def _even_size(w: int, h: int, short_side: Optional[int]) -> tuple:
    """``(width, height)`` of the preview: scaled to ``short_side`` (if set), rounded down to even
    sizes (yuv420p)."""
    if short_side:
        h, w = short_side_size(h, w, short_side)
    return max(2, w - w % 2), max(2, h - h % 2)


def write_annotated_video(path: str, out: str, *, timeline: Optional[Sequence[Dict[str, Any]]] = None,
                          topk: Optional[Sequence[Dict[str, Any]]] = None, short_side: Optional[int] = None,
                          fps: Optional[float] = None) -> int:
    """Write every frame of ``path`` to ``out`` (H.264 MP4) at the input's frame rate and size
    (``short_side``: scaled, even sizes), each with the top-k of its window (``timeline`` entries
    with ``start``/``topk``/``name``) or, without a timeline, the whole-video ``topk``.
    Returns the number of frames written; raises :class:`VideoDecodeError` if ``path`` cannot be read."""
    import av
    from fractions import Fraction
    from PIL import Image

    starts = [float(e["start"]) for e in (timeline or [])]
    try:
        frames = FrameIterator(path, "pyav")
    except Exception as e:  # PyAV/FFmpeg errors: OSError subclasses, ValueError, ...
        raise VideoDecodeError(path, f"cannot open: {one_line(e)}") from None
    written = 0

    def encode(tmp: str) -> None:
        nonlocal written
        rate = fps or frames.fps or 25.0
        with av.open(tmp, "w", format="mp4") as dst:
            enc = None
            for k, rgb in enumerate(frames):
                if enc is None:  # sized by the first frame
                    W, H = _even_size(rgb.shape[1], rgb.shape[0], short_side)
                    font = _font(max(12, H // 24))
                    enc = dst.add_stream("libx264", rate=Fraction(rate).limit_denominator(1001))
                    enc.width, enc.height, enc.pix_fmt = W, H, "yuv420p"
                    enc.options = {"preset": "veryfast", "crf": "23"}
                t = k / rate
                img = Image.fromarray(resize_clip(rgb[None], H, W)[0])
                if timeline:
                    e = timeline[max(0, bisect.bisect_right(starts, t + 1e-9) - 1)]
                    lines = label_lines(e["topk"], e["name"], f"{t:6.2f} s  window {e['start']:g}-{e['end']:g} s")
                else:
                    lines = label_lines(topk or [], None, f"{t:6.2f} s")
                draw_text(img, lines, font)
                vf = av.VideoFrame.from_image(img)
                for packet in enc.encode(vf):
                    dst.mux(packet)
                written += 1
            if enc is None:
                raise VideoDecodeError(path, "no frames decoded")
            for packet in enc.encode():
                dst.mux(packet)

    try:
        atomic_write(out, encode)  # a file named ``out`` is always a whole video
    finally:
        frames.close()
    return written


def save_preview_gif(frames: np.ndarray, text: str, path: str, fps: float = 8.0) -> str:
    """Draw ``text`` on each of ``frames`` (upscaled so the label is legible) and write a GIF."""
    from PIL import Image

    h, w = frames.shape[1:3]
    scale = max(1, int(np.ceil(256 / max(1, min(h, w)))))
    font = _font(14)
    images = []
    for f in frames:
        img = Image.fromarray(f).resize((w * scale, h * scale), Image.NEAREST)
        draw_text(img, [text], font)
        images.append(img)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path


def vis_paths(out: str, videos: Sequence[str]) -> Dict[str, str]:
    """Output file per video: ``out`` itself for one video; for several, ``out`` without its
    extension becomes a folder holding ``<video name><ext>`` (``<i>_<name><ext>`` on clashes)."""
    if len(videos) == 1:
        return {videos[0]: out}
    folder, ext = os.path.splitext(out)
    stems = [os.path.splitext(os.path.basename(v))[0] for v in videos]
    clash = {s for s in stems if stems.count(s) > 1}
    return {v: os.path.join(folder, (f"{i}_{s}" if s in clash else s) + ext)
            for i, (v, s) in enumerate(zip(videos, stems))}


__all__ = ["write_annotated_video", "save_preview_gif", "vis_paths", "draw_text", "label_lines"]
