"""Decoding with decord and PyAV from videos the test encodes itself."""
import numpy as np
import pytest

from src.data import VideoDecodeError, VideoReader, check_video, probe_video, read_frames
from tests.helpers.video import tiny_video


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("dec")
    return {ext: tiny_video(str(root / f"v.{ext}"), num_frames=20, height=32, width=48)
            for ext in ("mp4", "avi", "mkv", "webm")}


@pytest.mark.parametrize("ext", ["mp4", "avi", "mkv", "webm"])
@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_containers_decode_the_requested_frames(videos, ext, backend):
    with VideoReader(videos[ext], backend) as vr:
        assert vr.backend == backend and vr.num_frames == 20 and vr.fps == pytest.approx(25)
        frames = vr.get_frames([0, 5, 19, 5])
    assert frames.shape == (4, 32, 48, 3) and frames.dtype == np.uint8
    # frame t has a bright bar at column 2t: the right frames, in the requested order
    assert frames[:, 10].max(axis=-1).argmax(axis=1).tolist() == [0, 10, 38, 10]


def test_probe_and_read_frames(videos):
    assert probe_video(videos["mp4"]) == (20, pytest.approx(25.0))
    assert read_frames(videos["mkv"], [3]).shape == (1, 32, 48, 3)


def test_bad_files_raise_one_line_errors(tmp_path, videos):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "text.mp4"
    text.write_text("not a video\n")
    data = open(videos["mp4"], "rb").read()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    for path, reason in [(empty, "empty file"), (text, "cannot open"), (cut, "cannot"),
                         (tmp_path / "nope.mp4", "file not found")]:
        with pytest.raises(VideoDecodeError) as e:
            read_frames(str(path), [0])
        assert str(e.value).startswith(f"{path}: {reason}") and "\n" not in str(e.value)
        assert e.value.path == str(path)
    assert check_video(str(text)) is not None
    assert check_video(videos["mp4"], min_frames=21).startswith("too short: 20 frames")
    assert check_video(videos["mp4"], min_frames=20) is None
    with pytest.raises(VideoDecodeError, match="out of range"):
        read_frames(videos["mp4"], [20])


def test_pyav_and_decord_give_identical_pixels_so_the_default_decoder_changes_no_input():
    """The default decoder moved from decord to PyAV: every family's network must still see the
    same pixels. decord (its own FFmpeg build and YUV->RGB path) is the independent reference,
    on an x264 stream with B-frames and sparse, out-of-order indices."""
    import tempfile, os
    from src.tools.make_demo_data import encode_mp4, render_video

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "v.mp4")
        encode_mp4(path, render_video(0, np.random.default_rng(0), 64, 96, 40))
        idx = [26, 0, 5, 13, 39, 13]
        with VideoReader(path, "decord") as a, VideoReader(path, "pyav") as b:
            fa, fb = a.get_frames(idx), b.get_frames(idx)
    assert fa.shape == fb.shape == (6, 64, 96, 3)
    np.testing.assert_array_equal(fa, fb)
