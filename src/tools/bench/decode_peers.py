"""The loader against the peers' decoding paths, one case per worker process (``bench loader --peers``).

A case times training clips of X3D-XS (4 frames x sampling rate 12 at ``target_fps`` 30) from
random videos and random starts, in a worker pinned to one core (``os.sched_setaffinity``), so
clips/s is per core whatever threads a decoder starts; clips per CPU-second (process time, all
threads) is reported beside it, less sensitive to other jobs on the machine. Cases:

* ``ours``: our training chain as a loader worker runs it, ``ClipSource[i]`` of the x3d_xs train
  config (open, plan, read, RandomShortSideScale, RandomCrop, flip, Rescale, Normalize, ToCTHW),
  with ``decoder`` pyav or decord and ``clips_per_video`` K (an item gives K clips);
* ``loader``: the real MindSpore loader around it (1 worker thread, batches of 4);
* ``pv_pyav`` / ``pv_decord``: pytorchvideo 0.1.5 ``EncodedVideo.from_path(path, decode_audio=False,
  decoder=...)``, ``get_clip(start, start + 1.6 s)`` with a uniform random start (its
  RandomClipSampler), decode alone: the float32 (C, T, H, W) tensor of every frame in the span;
* ``slowfast``: SlowFast's ``decoder.pyav_decode`` written again here (no torch): the clip's
  pts range from a random start, a seek 1024 pts before it to the key frame, decode until past
  the end, every frame in the range to RGB, stacked, then the 4 frames by ``linspace``.

The peers' pytorchvideo modules are imported without running ``pytorchvideo/data/__init__.py``
(it needs torchvision, which their decoders do not use).
"""
from __future__ import annotations

import math
import os
import sys
import time
import types
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

FRAMES, RATE, TARGET_FPS = 4, 12, 30  # X3D-XS clip
PEERS = ("pv_pyav", "pv_decord", "slowfast")


def _pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(core)})


def key_frame_index(path: str) -> Tuple[np.ndarray, np.ndarray]:
    """(pts sorted = frame order, is-key per frame) from the packet headers (no decoding)."""
    import av

    with av.open(path) as c:
        s = c.streams.video[0]
        rows = sorted((int(p.pts), bool(p.is_keyframe)) for p in c.demux(s) if p.size and p.pts is not None)
    return np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], bool)


def span_from_key(keys: np.ndarray, first: int, last: int) -> int:
    """Frames from the key frame at or before ``first`` to ``last`` (what a seek-and-decode of
    frames ``first..last`` decodes at least)."""
    k = int(np.nonzero(keys[:first + 1])[0][-1])
    return last - k + 1


# ----------------------------------------------------------------------------- the peers
def _import_pytorchvideo_data() -> Any:
    """``pytorchvideo.data.encoded_video`` without the package's ``__init__`` (torchvision)."""
    import mindspore  # noqa: F401  (before decord, which pytorchvideo's decord backend imports)
    import pytorchvideo

    name = "pytorchvideo.data"
    if name not in sys.modules:
        pkg = types.ModuleType(name)
        pkg.__path__ = [os.path.join(os.path.dirname(pytorchvideo.__file__), "data")]
        sys.modules[name] = pkg
    from pytorchvideo.data import encoded_video

    return encoded_video


def _pytorchvideo(backend: str) -> Callable[[str, np.random.Generator], Tuple[Any, int]]:
    ev = _import_pytorchvideo_data()
    duration = FRAMES * RATE / TARGET_FPS

    def clip(path: str, rng: np.random.Generator) -> Tuple[Any, int]:
        video = ev.EncodedVideo.from_path(path, decode_audio=False, decoder=backend)
        start = rng.uniform(0.0, max(float(video.duration) - duration, 0.0))
        out = video.get_clip(start, start + duration)["video"]
        video.close()
        return out, int(start * 30)  # first frame of the window: the --peers videos are 30 fps

    return clip


def slowfast_clip(path: str, rng: np.random.Generator) -> Tuple[np.ndarray, int, int]:
    """One training clip the way SlowFast's ``decoder.pyav_decode`` + ``temporal_sampling`` get it
    (PyAV's default threads, as SlowFast's default ``ENABLE_MULTI_THREAD_DECODE: False``).
    Returns the (T, H, W, 3) clip, its first frame and the frames decoded."""
    import av

    container = av.open(path)
    stream = container.streams.video[0]
    fps = float(stream.average_rate)
    frames_length, duration = stream.frames, stream.duration
    clip_size = RATE * FRAMES / TARGET_FPS * fps
    start_idx = rng.uniform(0.0, max(frames_length - clip_size, 0))  # get_start_end_idx, clip_idx -1
    end_idx = start_idx + clip_size - 1
    timebase = duration / frames_length
    start_pts, end_pts = int(start_idx * timebase), int(end_idx * timebase)
    container.seek(max(start_pts - 1024, 0), any_frame=False, backward=True, stream=stream)
    kept: Dict[int, Any] = {}
    decoded = 0
    for frame in container.decode(video=0):
        decoded += 1
        if frame.pts < start_pts:
            continue
        kept[frame.pts] = frame
        if frame.pts > end_pts:  # buffer_size 0: the first frame past the end stops it
            break
    container.close()
    frames = np.stack([kept[p].to_rgb().to_ndarray() for p in sorted(kept)])
    index = np.clip(np.linspace(0, clip_size - 1, FRAMES), 0, len(frames) - 1).astype(np.int64)
    return frames[index], int(start_idx), decoded


# ----------------------------------------------------------------------------- the worker
def _timed(n: int, warmup: int, one: Callable[[int], int]) -> Dict[str, float]:
    """Run ``one(i)`` (returns clips made) ``warmup`` + ``n`` times; clips/s and clips per CPU-s."""
    for i in range(warmup):
        one(i)
    clips, wall, cpu = 0, 0.0, 0.0
    for i in range(warmup, warmup + n):
        c, t = time.process_time(), time.perf_counter()
        clips += one(i)
        wall += time.perf_counter() - t
        cpu += time.process_time() - c
    return {"clips": clips, "clips_s": clips / wall, "cpu_clips_s": clips / max(cpu, 1e-9)}


def _x3d_cfg(root: str, ann: str, decoder: str, clips_per_video: int, overrides: List[str], videos: int) -> Any:
    from ...config import CONFIG_DIR, load_config

    return load_config(os.path.join(CONFIG_DIR, "x3d_xs.yaml"), [
        *overrides, f"data_loader.train.dataset={{type: VideoList, root: '{root}', ann_file: {ann}}}",
        f"data_loader.decoder={decoder}", f"data_loader.train.clips_per_video={clips_per_video}",
        "data_loader.train.num_parallel_workers=1", "data_loader.train.python_multiprocessing=false",
        f"data_loader.train.batch_size={min(4, videos) * clips_per_video}"])


def _breakdown(source: Any, items: int, seed: int) -> Dict[str, float]:
    """CPU ms per clip of each stage of our chain (pyav reader stats, each transform op)."""
    ds, k = source.dataset, source.clips_per_video
    parts: Dict[str, float] = {}
    decoded = packets = 0

    def add(key: str, seconds: float) -> None:
        parts[key] = parts.get(key, 0.0) + seconds

    for i in range(items):
        rng = np.random.default_rng([seed, 99, i])
        vid = int(rng.integers(len(ds)))
        t = time.process_time()
        reader = ds.open_reader(vid, source.decoder)
        add("open", time.process_time() - t)
        n = reader.num_frames
        plans = [ds.clip_indices(n, reader.fps or None, None, rng, vid) for _ in range(k)]
        union, where = np.unique(np.concatenate(plans), return_inverse=True)
        t = time.process_time()
        frames = reader.read(union)
        total = time.process_time() - t
        stats = getattr(getattr(reader, "_impl", None), "stats", {}) or {}
        for key in ("index_s", "seek_s", "decode_s", "convert_s"):
            add(key[:-2], stats.get(key, 0.0))
        add("read other", total - sum(stats.get(key, 0.0) for key in ("index_s", "seek_s", "decode_s", "convert_s")))
        decoded += stats.get("decoded", 0)
        packets += stats.get("packets", 0)
        reader.close()
        for j in range(k):
            clip = frames[where[j * FRAMES:(j + 1) * FRAMES]]
            for op in source.transform.ops:
                t = time.process_time()
                clip = op(clip, crop_index=0, rng=rng)
                add(type(op).__name__, time.process_time() - t)
    clips = items * k
    out = {key: 1e3 * v / clips for key, v in parts.items()}
    out["decoded_per_clip"] = decoded / clips
    out["packets_per_clip"] = packets / clips
    return out


def run_case(method: str, root: str, ann: str, videos: List[str], clips: int, warmup: int, core: int,
             seed: int, decoder: str = "pyav", clips_per_video: int = 1, overrides: Optional[List[str]] = None,
             breakdown: bool = False) -> Dict[str, Any]:
    """Time ``clips`` training clips of ``method`` (see the module doc) pinned to ``core``."""
    _pin(core)
    import mindspore  # noqa: F401  (before decord)

    rng = np.random.default_rng([seed, core])
    index = {p: key_frame_index(p)[1] for p in videos}
    decoded: List[int] = []
    out: Dict[str, Any] = {"method": method}
    if method in ("ours", "loader"):
        from ...data import create_loader

        cfg = _x3d_cfg(root, ann, decoder, clips_per_video, list(overrides or []), len(videos))
        loader = create_loader(cfg, "train", output_dir=os.path.join(root, f"out_{os.getpid()}"), seed=seed)
        source = loader.source
        if method == "ours":
            order = rng.permutation(np.resize(np.arange(len(source)), warmup + clips))

            def one(i: int) -> int:
                source[int(order[i])]
                return clips_per_video

            n_items = math.ceil(clips / clips_per_video)
            out.update(_timed(n_items, warmup, one))
            if breakdown:
                out["breakdown"] = _breakdown(source, max(6, n_items // 3), seed)
                out["decoded_per_clip"] = out["breakdown"]["decoded_per_clip"]
        else:
            it = loader.dataset.repeat(-1).create_tuple_iterator(num_epochs=1, output_numpy=True)
            batch = min(4, len(videos)) * clips_per_video
            out.update(_timed(math.ceil(clips / batch), 1,
                              lambda i: int(next(it)[0].shape[0])))
        return out
    if method == "slowfast":
        def one(i: int) -> int:
            path = videos[int(rng.integers(len(videos)))]
            clip, first, n = slowfast_clip(path, rng)
            decoded.append(n)
            return 1
    elif method in ("pv_pyav", "pv_decord"):
        get = _pytorchvideo(method[3:])

        def one(i: int) -> int:
            path = videos[int(rng.integers(len(videos)))]
            clip, first = get(path, rng)
            keys = index[path]
            decoded.append(span_from_key(keys, min(first, len(keys) - 1), min(first + 47, len(keys) - 1)))
            return 1
    else:
        raise ValueError(f"unknown case {method!r}")
    out.update(_timed(clips, warmup, one))
    out["decoded_per_clip"] = float(np.mean(decoded[warmup:])) if len(decoded) > warmup else float("nan")
    return out


__all__ = ["PEERS", "run_case", "slowfast_clip", "key_frame_index", "span_from_key"]
