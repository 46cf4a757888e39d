"""The PyAV reader's seek-and-skip decode and clips_per_video, against a plain decode of the whole file."""
import av
import numpy as np
import pytest
import yaml

from src.config import load_config
from src.data import VideoFileReader, create_loader
from src.data.datasets import VideoList
from src.data.decode import PyAVBackend
from src.data.errors import DataError
from src.data.sampling import train_clip_indices
from tests.helpers.video import encode_video, frame_pattern

FRAMES, KEYINT = 40, 12  # key frames at 0, 12, 24, 36


def encode_with_b_frames(path, frames, keyint=KEYINT):
    """H.264 as FFmpeg writes it by default (preset medium: B-frames, some of them not references),
    with a key frame every ``keyint`` frames."""
    t, h, w, _ = frames.shape
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes=3"}
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return str(path)


def plain_decode(path):
    """Every frame, decoding the file from its start in one pass (the reference)."""
    with av.open(path) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])


def patterned(num_frames, h, w, seed):
    rng = np.random.default_rng(seed)
    clip = frame_pattern(num_frames, h, w, seed).astype(np.int16)
    clip += rng.integers(-20, 21, size=clip.shape, dtype=np.int16)  # texture: real inter prediction
    return np.clip(clip, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    root = tmp_path_factory.mktemp("seek")
    path = encode_with_b_frames(root / "b.mp4", patterned(FRAMES, 48, 64, 0))
    return path, plain_decode(path)


def test_the_test_video_has_key_frames_and_non_reference_frames(video):
    path, full = video
    with av.open(path) as c:
        packets = [p for p in c.demux(c.streams.video[0]) if p.size]
    keys = sorted(int(p.pts) for p in packets if p.is_keyframe)
    assert len(full) == FRAMES and len(keys) == 4
    # a nal_ref_idc of 0 in some packet: frames that no other frame refers to
    nonref = 0
    for p in packets:
        data, i = bytes(p), 0
        while i + 5 <= len(data):
            size, header = int.from_bytes(data[i:i + 4], "big"), data[i + 4]
            nonref += (header & 31) in (1, 5) and (header >> 5) & 3 == 0
            i += 4 + size
    assert nonref > 5


CASES = [[0], [FRAMES - 1], [11, 12], [12], [13], [23, 24, 25], [35, 36, 37, 39], [0, 13, 26, 39],
         [39, 0, 20, 20], [5, 6, 7, 8], [30, 31, 38, 39], [24], [1, 2]]


@pytest.mark.parametrize("idx", CASES, ids=[",".join(map(str, c)) for c in CASES])
def test_seek_decode_gives_the_frames_of_a_plain_decode(video, idx):
    path, full = video
    backend = PyAVBackend(path)
    try:
        assert backend.num_frames == FRAMES
        np.testing.assert_array_equal(backend.get(np.array(idx)), full[idx])
    finally:
        backend.close()


def test_one_open_reader_reads_many_clips_in_any_order(video):
    path, full = video
    rng = np.random.default_rng(3)
    with VideoFileReader(path, "pyav") as vr:
        assert vr.backend == "pyav"
        for _ in range(25):
            idx = rng.integers(0, FRAMES, size=int(rng.integers(1, 6)))
            np.testing.assert_array_equal(vr.read(idx), full[idx])


def test_frames_nothing_needs_are_not_decoded(video):
    path, _ = video
    backend = PyAVBackend(path)
    try:
        backend.get(np.array([33]))  # from the key frame at 24: 10 packets, some not references
        fed, out = backend.stats["packets"], backend.stats["decoded"]
        assert fed >= 10 - 1 and out < fed
        backend.get(np.array([2]))  # an earlier frame after a later one: a seek back to frame 0
        assert backend.stats["packets"] <= 2 + 3 + 1  # frame 2 and at most the B-frame delay
    finally:
        backend.close()


def test_a_stream_without_b_frames_and_an_avi(tmp_path):
    clip = patterned(20, 32, 48, 1)
    for name in ("p.mp4", "m.avi"):  # x264 ultrafast (no B-frames); MPEG-4 part 2
        path = encode_video(str(tmp_path / name), clip)
        full = plain_decode(path)
        backend = PyAVBackend(path)
        for idx in ([0], [19], [4, 9, 14, 19], [10, 3]):
            np.testing.assert_array_equal(backend.get(np.array(idx)), full[idx])
        backend.close()


# ----------------------------------------------------------------------------- clips_per_video
@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("rep")
    lines = []
    for i in range(4):
        encode_with_b_frames(root / f"v{i}.mp4", patterned(FRAMES, 32, 48, 10 + i), keyint=16)
        lines.append(f"v{i}.mp4 {i}")
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    return root


def test_load_clips_draws_k_clips_in_sequence_and_reads_their_frames(videos):
    ds = VideoList(str(videos), "list.txt", num_frames=4, sampling_rate=3)
    full = plain_decode(str(videos / "v2.mp4"))
    clips = ds.load_clips(2, 3, np.random.default_rng(7), decoder="pyav")
    rng = np.random.default_rng(7)  # the plans, drawn one after the other from the same generator
    plans = [train_clip_indices(FRAMES, 4, 3, rng) for _ in range(3)]
    assert len(clips) == 3 and len({tuple(p) for p in plans}) == 3
    for clip, plan in zip(clips, plans):
        np.testing.assert_array_equal(clip, full[plan])
    one = ds.load_clips(2, 1, np.random.default_rng(7), decoder="pyav")
    np.testing.assert_array_equal(one[0], ds.load_clip(2, None, np.random.default_rng(7), decoder="pyav"))


def _cfg(tmp_path, root, batch, per_video):
    ds = {"type": "VideoList", "root": str(root), "ann_file": "list.txt", "num_frames": 4, "sampling_rate": 3}
    cfg = {"model": {"type": "x3d_xs", "num_frames": 4, "crop_size": 24},
           "data_loader": {"decoder": "pyav", "train": {
               "dataset": ds, "batch_size": batch, "clips_per_video": per_video, "num_parallel_workers": 1,
               "map": {"operations": [{"type": "RandomCrop", "size": 24}, {"type": "Rescale"}, {"type": "ToCTHW"}]}}}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_config(str(path))


def test_loader_with_two_clips_per_video(tmp_path, videos):
    loader = create_loader(_cfg(tmp_path, videos, 4, 2), "train", output_dir=str(tmp_path / "out"))
    assert loader.steps_per_epoch == 2 and loader.num_samples == 8  # 4 videos x 2 clips, 2 videos a batch
    batches = list(loader.iter_numpy())
    assert len(batches) == 2
    labels = np.concatenate([b["label"] for b in batches])
    assert all(b["video"].shape == (4, 3, 4, 24, 24) for b in batches)
    assert sorted(labels.tolist()) == [0, 0, 1, 1, 2, 2, 3, 3]  # every video once, two clips each
    pairs = labels.reshape(-1, 2)
    assert (pairs[:, 0] == pairs[:, 1]).all()  # a video's clips sit side by side
    for b in batches:  # the two clips of a video: other random crops or frames
        v = b["video"].reshape(2, 2, -1)
        assert not np.array_equal(v[0, 0], v[0, 1]) and not np.array_equal(v[1, 0], v[1, 1])


def test_batch_size_must_be_a_multiple_of_clips_per_video(tmp_path, videos):
    with pytest.raises(DataError, match="clips_per_video.*batch_size \\(3\\)"):
        create_loader(_cfg(tmp_path, videos, 3, 2), "train", output_dir=str(tmp_path / "out"))
