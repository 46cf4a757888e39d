"""Sliding windows, live streams and annotated videos (src/engine/stream.py, infer.py --window/--stream).

Reference values are computed here independently: window bounds from the formula in the issue
(start k*stride, cut at the video's end), clip frames from SlowFast's ``floor(linspace(start,
start + clip_size - 1, T))``, window scores from every frame decoded by the test itself.
"""
from __future__ import annotations

import http.server
import json
import math
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import mindspore as ms  # noqa: F401  (before decord, via src.data)

from src.engine.sliding import FrameRing
from src.engine.stream import FrameBuffer, FrameItem
from src.engine.windows import Timeline, Window, WindowPlan
from tests.helpers.training import REPO, run_py, tiny_config
from tests.helpers.video import encode_video, frame_pattern

NAMES = ["left", "right", "up"]
INFER = {"num_clips": 2, "num_crops": 1, "short_side": 32, "crop_size": 32, "batch_size": 4, "topk": 3,
         "window_seconds": 0.0}


def segment_frames(kind: str, n: int, size=(32, 48)) -> np.ndarray:
    """Frames of one kind of segment: ``grey`` (the moving bar on grey) or ``red``."""
    frames = frame_pattern(n, *size, seed=0)
    if kind == "red":
        frames[:, :, :, 0] = 230
    return frames


def segments_video(path: str, seconds_each: float = 2.0, fps: int = 25) -> str:
    """Alternating 2-second grey and red segments (the model below labels them differently)."""
    n = int(seconds_each * fps)
    kinds = ("grey", "red", "grey", "red")
    return encode_video(path, np.concatenate([segment_frames(k, n) for k in kinds]), fps=fps)


def separate_segments(net, cfg) -> None:
    """Set the classifier's bias so that a grey clip scores class 0 and a red clip class 1
    (class 2 never): the log-probability gap of classes 1 and 0 is moved halfway between the
    two kinds of clips. A random network alone gives every window the same label."""
    from src.data import build_transforms, infer_operations

    tf = build_transforms(infer_operations(cfg))
    net.set_train(False)
    clips = np.stack([tf(segment_frames(k, 4)) for k in ("grey", "red")])
    logp = np.log(net(ms.Tensor(clips)).asnumpy().astype(np.float64))
    gap = logp[:, 1] - logp[:, 0]  # grey, red
    sign = 1.0 if gap[1] > gap[0] else -1.0  # which class the red clip leans to
    bias = np.zeros(3, np.float32)
    bias[1] = -sign * (gap[0] + gap[1]) / 2.0
    bias[2] = -50.0
    w = net.head.projection.weight
    if sign < 0:  # swap classes 0 and 1 so that red -> class 1
        w.set_data(ms.Tensor(w.asnumpy()[[1, 0, 2]]))
        bias[1] = (gap[0] + gap[1]) / 2.0
    net.head.projection.bias.set_data(ms.Tensor(bias))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Tiny 3-class model whose classifier is scaled up (so labels vary with content), videos."""
    from src.config import load_config
    from src.context import init_context
    from src.engine.checkpoint import save_checkpoint
    from src.models import build_model

    d = str(tmp_path_factory.mktemp("stream"))
    cfg_path = tiny_config(os.path.join(d, "cfg.yaml"), d, num_classes=3, extra={"infer": INFER})
    cfg = load_config(cfg_path)
    init_context(cfg.context, "CPU")
    net = build_model(cfg.model)
    w = net.head.projection.weight
    w.set_data(ms.Tensor(w.asnumpy() * 30.0))
    separate_segments(net, cfg)
    ckpt = save_checkpoint(net, os.path.join(d, "m.ckpt"), epoch=1, global_step=1, class_names=NAMES)
    mp4 = segments_video(os.path.join(d, "seg.mp4"))
    ts = os.path.join(d, "seg.ts")
    import av
    with av.open(mp4) as src, av.open(ts, "w", format="mpegts") as dst:  # same frames, MPEG-TS container
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = out
            dst.mux(packet)
    return {"dir": d, "cfg_path": cfg_path, "cfg": cfg, "ckpt": ckpt, "mp4": mp4, "ts": ts}


def slowfast_clip(start: float, size: float, t: int, video_frames: int) -> list:
    return np.clip(np.floor(np.linspace(start, start + size - 1, t) + 1e-9), 0, video_frames - 1).astype(int).tolist()


# ----------------------------------------------------------------------------- planning
@pytest.mark.parametrize("n,fps,window,stride", [(250, 25.0, 2.0, 1.0), (250, 25.0, 2.0, 2.0), (60, 25.0, 1.0, 1.0),
                                                 (37, 30.0, 2.0, 0.5), (301, 30.0, 1.5, 0.7)])
def test_window_count_and_bounds(n, fps, window, stride):
    plan = WindowPlan(fps=fps, window_s=window, stride_s=stride, num_frames=4, sampling_rate=2)
    ws = plan.windows(n)
    duration = n / fps
    expected = 1 if duration <= window else math.ceil((duration - window) / stride - 1e-9) + 1
    assert len(ws) == expected
    for k, w in enumerate(ws):
        assert w.first == math.floor(k * stride * fps + 0.5)
        assert w.end == min(math.floor((k * stride + window) * fps + 0.5), n)
        assert w.start == round(k * stride, 3) and w.stop == round(min(k * stride + window, w.end / fps), 3)
    assert ws[-1].end == n  # the whole video is covered


def test_clips_of_a_window_follow_slowfast_sampling_and_never_look_ahead():
    # T=4, rate 12, target 30 fps on a 25 fps video: clip_size = 12 * 4 * 25 / 30 = 40 frames
    plan = WindowPlan(fps=25.0, window_s=2.0, stride_s=1.0, num_frames=4, sampling_rate=12, num_clips=2,
                      target_fps=30)
    w = plan.window(3)  # frames [75, 125): 50 frames, delta 10 -> starts 75 + 10 * i / 2
    assert (w.first, w.end) == (75, 125)
    assert w.clips.tolist() == [slowfast_clip(75.0, 40, 4, 125), slowfast_clip(80.0, 40, 4, 125)]
    short = WindowPlan(fps=25.0, window_s=1.0, stride_s=1.0, num_frames=4, sampling_rate=12, target_fps=30)
    w = short.window(2)  # frames [50, 75) shorter than a clip: the clip ending at frame 74
    assert w.clips.tolist() == [slowfast_clip(35.0, 40, 4, 75)]
    first = short.window(0)  # at the start: clamped into frames 0..24
    assert first.clips.tolist() == [slowfast_clip(0.0, 40, 4, 25)]
    for k in range(6):
        win = short.window(k)
        assert win.clips.max() < win.end and win.clips.min() >= 0


def test_stride_longer_than_window_is_refused():
    with pytest.raises(ValueError, match="stride"):
        WindowPlan(fps=25.0, window_s=1.0, stride_s=1.5, num_frames=4, sampling_rate=2)


# ----------------------------------------------------------------------------- timeline
def _win(k: int) -> Window:
    return Window(k, 25 * k, 25 * k + 50, float(k), float(k) + 2.0, np.zeros((1, 4), np.int64))


def test_timeline_smoothing_threshold_and_segments():
    probs = [[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.4, 0.3, 0.3], [0.2, 0.1, 0.7]]
    tl = Timeline(NAMES, topk=2, smooth=2, threshold=0.51)
    entries = [tl.add(_win(k), np.array(p)) for k, p in enumerate(probs)]
    smoothed = [np.mean(probs[max(0, k - 1):k + 1], axis=0) for k in range(len(probs))]
    for e, p in zip(entries, smoothed):
        top = int(np.argmax(p))
        assert e["prob"] == pytest.approx(p[top])
        assert [t["label"] for t in e["topk"]] == list(np.argsort(-p, kind="stable")[:2])
        assert e["name"] == (NAMES[top] if p[top] >= 0.51 else "uncertain")
    names = [e["name"] for e in entries]
    # smoothed: left .9 | left .5 (< .51) | right .8 | right .55 | up .5 (< .51)
    assert names == ["left", "uncertain", "right", "right", "uncertain"]
    assert entries[1]["label"] == -1 and entries[1]["topk"][0]["name"] == "left"
    segs = tl.segments()
    assert [(s["name"], s["start"], s["end"], s["windows"]) for s in segs] == [
        ("left", 0.0, 1.0, 1), ("uncertain", 1.0, 2.0, 1), ("right", 2.0, 4.0, 2), ("uncertain", 4.0, 6.0, 1)]
    assert segs[2]["mean_prob"] == pytest.approx((0.8 + 0.55) / 2, abs=1e-6)


def test_ring_serves_dropped_frames_from_the_nearest_earlier_one():
    ring = FrameRing(4, convert=lambda f: np.full((2, 2, 3), f, np.uint8))
    for i in (0, 1, 3, 6):  # 2, 4, 5 dropped
        ring.push(i, i)
    assert ring.get([1, 2, 4, 5, 6])[:, 0, 0, 0].tolist() == [1, 1, 3, 3, 6]
    ring.push(7, 7)  # 0 leaves the ring (keeps 4): a request before the ring gets its oldest frame
    assert ring.get([0])[:, 0, 0, 0].tolist() == [1]


def test_live_buffer_drops_oldest_and_counts():
    buf = FrameBuffer(3, drop=True)
    for i in range(5):
        assert buf.put(FrameItem(i, None, 0.0))
    assert buf.dropped == 2
    got = [buf.get().index for _ in range(3)]
    assert got == [2, 3, 4]
    buf.close()
    assert buf.get() is None and buf.closed


# ----------------------------------------------------------------------------- scores
def test_window_scores_equal_scoring_each_window_from_scratch(setup):
    """The one-pass windows (shared frames, cache, batching) give what decoding every frame and
    scoring each window's clips separately gives."""
    import av
    from src.data import build_transforms, infer_operations
    from src.data.transforms import scale_short_side
    from src.engine.inference import load_inference_model
    from src.engine.predict import VideoPredictor

    cfg = setup["cfg"]
    pred = VideoPredictor(cfg, ckpt=setup["ckpt"])
    r = pred.predict(setup["mp4"], topk=3, window_seconds=2.0, stride_seconds=0.5)
    with av.open(setup["mp4"]) as c:
        frames = np.stack([scale_short_side(f.to_ndarray(format="rgb24")[None], 32)[0] for f in c.decode(video=0)])
    n = len(frames)
    assert n == 200 and r["stats"]["frames"] == n
    model = load_inference_model(cfg, ckpt=setup["ckpt"], batch_size=1)
    tf = build_transforms(infer_operations(cfg))
    duration, size = n / 25.0, 2 * 4  # clip_size without target_fps: rate * T
    assert len(r["timeline"]) == math.ceil((duration - 2.0) / 0.5) + 1
    for k, e in enumerate(r["timeline"]):
        first, end = math.floor(k * 12.5 + 0.5), min(math.floor(k * 12.5 + 50.5), n)
        length = end - first
        starts = [first + (length - size) * i / 2 for i in range(2)]  # num_clips = 2
        views = np.stack([tf(frames[slowfast_clip(s, size, 4, end)]) for s in starts])
        probs = model.predict(views).mean(axis=0)
        assert e["frames"] == [first, end - 1]
        assert e["topk"][0]["label"] == int(np.argmax(probs))
        np.testing.assert_allclose([t["prob"] for t in e["topk"]], np.sort(probs)[::-1], atol=1e-5)
    labels = {e["name"] for e in r["timeline"]}
    assert len(labels) >= 2, "the scaled classifier should label the segments differently"
    segs = r["segments"]
    assert sum(s["windows"] for s in segs) == len(r["timeline"])
    assert all(a["name"] != b["name"] for a, b in zip(segs, segs[1:]))


# ----------------------------------------------------------------------------- CLI: stream
def test_stdin_mpegts_stream_matches_file_mode(setup, tmp_path):
    common = ["--config", setup["cfg_path"], "--ckpt", setup["ckpt"], "--window", "1", "--stride", "0.5",
              "--topk", "2"]
    file_json, stream_json = str(tmp_path / "file.json"), str(tmp_path / "stream.json")
    f = run_py(["infer.py", setup["mp4"], *common, "--json", file_json])
    assert f.returncode == 0, f.stderr
    with open(setup["ts"], "rb") as ts:
        s = subprocess.run([sys.executable, "infer.py", "--stream", "-", *common, "--json", stream_json],
                           cwd=REPO, stdin=ts, capture_output=True, text=True, timeout=600)
    assert s.returncode == 0, s.stderr
    file_tl = json.load(open(file_json))["videos"][0]["timeline"]
    doc = json.load(open(stream_json))
    expected = math.ceil((8.0 - 1.0) / 0.5) + 1  # 200 frames at 25 fps
    assert len(file_tl) == len(doc["timeline"]) == expected
    lines = [ln for ln in s.stdout.splitlines() if "(latency" in ln]
    assert len(lines) == expected
    for a, b, line in zip(file_tl, doc["timeline"], lines):
        assert (a["start"], a["end"], a["name"]) == (b["start"], b["end"], b["name"])
        np.testing.assert_allclose([t["prob"] for t in a["topk"]], [t["prob"] for t in b["topk"]], atol=1e-5)
        assert line.split()[0] == f"{b['end']:.2f}" and b["name"] in line and b["latency_ms"] >= 0
    st = doc["stats"]
    assert st["windows"] == expected and st["frames"] == 200 and st["frames_dropped"] == 0
    assert st["video_seconds"] == pytest.approx(8.0)
    assert "end of stream: %d windows, 200 frames (0 dropped)" % expected in s.stdout


def _one_error(proc, source):
    errs = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert "Traceback" not in proc.stderr
    assert len(errs) == 1 and source in errs[0], proc.stderr
    return errs[0]


def test_unreachable_and_corrupt_sources_are_one_error_line(setup, tmp_path):
    common = ["--config", setup["cfg_path"], "--ckpt", setup["ckpt"], "--window", "1"]
    for source in ("/dev/video63", "rtsp://127.0.0.1:9/cam", str(tmp_path / "missing.ts")):
        proc = run_py(["infer.py", "--stream", source, *common])
        assert proc.returncode == 2
        _one_error(proc, source)
    garbage = np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes()
    proc = subprocess.run([sys.executable, "infer.py", "--stream", "-", *common], cwd=REPO, input=garbage,
                          capture_output=True, timeout=600)
    proc.stderr = proc.stderr.decode()
    assert proc.returncode == 2
    _one_error(proc, "-:")


def test_stream_breaking_midway_prints_summary_and_exits_2(setup):
    """An HTTP source that sends half of an MPEG-TS file and then goes silent."""
    data = open(setup["ts"], "rb").read()
    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            release.wait(60)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/cam.ts"
    try:
        proc = run_py(["infer.py", "--stream", url, "--config", setup["cfg_path"], "--ckpt", setup["ckpt"],
                       "--window", "1", "--timeout", "2", "--drop", "no"])
    finally:
        release.set()
        server.shutdown()
    assert proc.returncode == 2, proc.stderr
    assert "stream broke after" in _one_error(proc, url)
    summary = [ln for ln in proc.stdout.splitlines() if ln.startswith("stream broke:")]
    assert len(summary) == 1
    windows = int(summary[0].split(":")[1].split()[0])
    assert 0 < windows < 8 and windows == sum("(latency" in ln for ln in proc.stdout.splitlines())


# ----------------------------------------------------------------------------- CLI: annotated video
def test_save_vis_writes_every_video_whole_and_annotated(setup, tmp_path):
    import av
    second = encode_video(str(tmp_path / "b.mkv"), frame_pattern(40, 24, 32, seed=4), fps=20)
    out = str(tmp_path / "vis.mp4")
    proc = run_py(["infer.py", setup["mp4"], second, "--config", setup["cfg_path"], "--ckpt", setup["ckpt"],
                   "--window", "1", "--save-vis", out])
    assert proc.returncode == 0, proc.stderr
    folder = str(tmp_path / "vis")
    assert sorted(os.listdir(folder)) == ["b.mp4", "seg.mp4"]
    for name, (frames, fps, h, w) in {"seg.mp4": (200, 25, 32, 48), "b.mp4": (40, 20, 24, 32)}.items():
        with av.open(os.path.join(folder, name)) as c:
            s = c.streams.video[0]
            decoded = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
            assert (len(decoded), float(s.average_rate), s.height, s.width) == (frames, fps, h, w)
            # the label box (black, yellow text: no blue) covers the top-left corner of every
            # frame; the input has blue >= 40 everywhere
            assert max(int(f[1:5, 1:5, 2].max()) for f in decoded) < 30
    one = str(tmp_path / "one.mp4")
    proc = run_py(["infer.py", second, "--config", setup["cfg_path"], "--ckpt", setup["ckpt"],
                   "--save-vis", one, "--vis-short-side", "96"])
    assert proc.returncode == 0, proc.stderr
    with av.open(one) as c:
        s = c.streams.video[0]
        assert (s.height, s.width) == (96, 128) and sum(1 for _ in c.decode(s)) == 40


# ----------------------------------------------------------------------------- bounded memory
def _peak_rss_mb(args) -> float:
    proc = subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, rusage = os.wait4(proc.pid, 0)[1:]
    out, err = proc.communicate()
    assert b"Traceback" not in err, err.decode()[-2000:]
    return rusage.ru_maxrss / 1024.0


def test_peak_memory_does_not_grow_with_video_length(setup, tmp_path):
    """A 5-minute video (64x64, 25 fps) against a 10-second one: frames kept for the whole video
    would add ~90 MB (RGB) or ~45 MB (decoded YUV) here."""
    short = encode_video(str(tmp_path / "short.mp4"), frame_pattern(250, 64, 64, seed=1))
    frames = frame_pattern(7500, 64, 64, seed=2)
    long = encode_video(str(tmp_path / "long.mp4"), frames)
    del frames
    common = ["--config", setup["cfg_path"], "--ckpt", setup["ckpt"], "--window", "2", "--stride", "1",
              "infer.num_clips=1"]
    rss_short = _peak_rss_mb(["infer.py", short, *common])
    rss_long = _peak_rss_mb(["infer.py", long, *common, "--json", str(tmp_path / "long.json")])
    doc = json.load(open(tmp_path / "long.json"))["videos"][0]
    assert doc["stats"]["frames"] == 7500 and len(doc["timeline"]) == 299
    assert rss_long - rss_short < 25.0, (rss_short, rss_long)
