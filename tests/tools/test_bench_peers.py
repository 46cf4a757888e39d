"""The SlowFast-style decode of ``bench loader --peers`` picks SlowFast's frames."""
import math

import av
import numpy as np

from src.tools.bench.decode_peers import slowfast_clip, span_from_key
from tests.data.test_seek_decode import encode_with_b_frames, patterned, plain_decode


def test_slowfast_style_decode_returns_slowfast_frames(tmp_path):
    path = encode_with_b_frames(tmp_path / "v.mp4", patterned(80, 32, 48, 5), keyint=20)
    with av.open(path) as c:
        fps = float(c.streams.video[0].average_rate)
    full = plain_decode(path)
    for seed in range(4):
        clip, first, decoded = slowfast_clip(path, np.random.default_rng(seed))
        # SlowFast: start uniform in [0, frames - clip_size]; the window's frames from ceil(start) on,
        # then floor(linspace(0, clip_size - 1, 4)) of them
        size = 12 * 4 / 30 * fps
        start = np.random.default_rng(seed).uniform(0.0, 80 - size)
        expect = math.ceil(start - 1e-9) + np.floor(np.linspace(0, size - 1, 4)).astype(int)
        assert first == int(start)
        np.testing.assert_array_equal(clip, full[expect])
        assert decoded >= expect[-1] - (expect[0] // 20) * 20  # from the key frame before it


def test_span_from_key():
    keys = np.zeros(300, bool)
    keys[[0, 250]] = True
    assert span_from_key(keys, 10, 57) == 58 and span_from_key(keys, 251, 298) == 49
    assert span_from_key(keys, 250, 250) == 1
