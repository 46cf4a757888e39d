"""Repeated augmentation (data_loader.train.aug_repeats): the sampler alone, then the loader on tiny
videos (each video k times per epoch with independent draws, disjoint rank shards), and the
loader's MixUp batches (soft float32 targets, reproducible per epoch)."""
from collections import Counter

import mindspore.dataset as msds
import numpy as np
import pytest
import yaml

from src.config import load_config
from src.data import create_loader
from src.data.samplers import RepeatAugSampler
from tests.helpers.video import tiny_video

NUM_VIDEOS = 6


@pytest.mark.parametrize("n,k,ranks", [(10, 3, 2), (12, 2, 4), (7, 3, 3), (5, 1, 2)])
def test_each_video_appears_k_times_per_epoch_over_disjoint_rank_slices(n, k, ranks):
    for epoch in range(3):
        shards = []
        for r in range(ranks):
            s = RepeatAugSampler(n, k, num_shards=ranks, shard_id=r, seed=4)
            s.set_epoch(epoch)
            shards.append(list(s))
            assert len(shards[-1]) == len(s) == -(-n * k // ranks)  # ceil: equal on every rank
        every = [j for sh in shards for j in sh]
        pad = len(every) - n * k  # wrap-around padding to a multiple of the rank count
        assert 0 <= pad < ranks
        counts = Counter(every)
        assert set(counts) == set(range(n * k))  # every (video, copy) sample is there
        per_video = Counter(j // k for j in every)
        assert sum(per_video[v] - k for v in range(n)) == pad and all(per_video[v] >= k for v in range(n))
        if pad == 0:
            assert all(c == 1 for c in counts.values()) and all(per_video[v] == k for v in range(n))
            # disjoint slices: no sample index on two ranks
            assert sum(len(set(a) & set(b)) for i, a in enumerate(shards) for b in shards[i + 1:]) == 0


def test_copies_of_a_video_are_spread_over_the_ranks_and_the_order_changes_per_epoch():
    n, k, ranks = 8, 2, 2
    samplers = [RepeatAugSampler(n, k, num_shards=ranks, shard_id=r) for r in range(ranks)]
    for s in samplers:
        s.set_epoch(0)
    rank0, rank1 = ({j // k for j in s} for s in samplers)
    assert rank0 == rank1 == set(range(n))  # k == ranks: each rank gets one copy of every video
    first = list(samplers[0])
    samplers[0].set_epoch(1)
    assert list(samplers[0]) != first
    samplers[0].set_epoch(0)
    assert list(samplers[0]) == first  # (seed, epoch) alone decide the order: resume-safe
    assert list(RepeatAugSampler(4, 2, shuffle=False)) == list(range(8))


# ------------------------------------------------------------------------------ the loader
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("rep")
    for i in range(NUM_VIDEOS):
        tiny_video(str(root / f"v{i}.mp4"), num_frames=24, height=32, width=40, seed=i)
    (root / "train.txt").write_text("".join(f"v{i}.mp4 {i}\n" for i in range(NUM_VIDEOS)))
    return root


def _cfg(tmp_path, root, **train):
    ds = {"type": "VideoList", "root": str(root), "ann_file": "train.txt", "num_frames": 4, "sampling_rate": 2}
    ops = [{"type": "RandomShortSideScale", "min_size": 28, "max_size": 36}, {"type": "RandomCrop", "size": 24},
           {"type": "RandomHorizontalFlip", "prob": 0.5}, {"type": "Rescale"},
           {"type": "Normalize", "mean": [0.45] * 3, "std": [0.225] * 3}, {"type": "ToCTHW"}]
    cfg = {"model": {"type": "x3d_xs", "num_frames": 4, "crop_size": 24, "num_classes": NUM_VIDEOS},
           "data_loader": {"train": dict({"dataset": ds, "batch_size": 2, "num_parallel_workers": 1,
                                          "map": {"operations": ops}}, **train),
                           "eval": {"dataset": ds}}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_config(str(path))


def test_loader_repeats_each_video_k_times_with_independent_draws_across_two_ranks(tmp_path, data):
    cfg = _cfg(tmp_path, data, aug_repeats=2)
    clips = {}
    for rank in range(2):
        loader = create_loader(cfg, "train", num_shards=2, shard_id=rank, output_dir=str(tmp_path / "o"))
        assert loader.num_samples == NUM_VIDEOS and loader.steps_per_epoch == 3  # 6 x 2 / 2 ranks
        loader.set_epoch(0)
        clips[rank] = [(int(l), v) for b in loader.iter_numpy() for l, v in zip(b["label"], b["video"])]
    labels = [l for rank in clips for l, _ in clips[rank]]
    assert Counter(labels) == {v: 2 for v in range(NUM_VIDEOS)}  # label = video index
    for v in range(NUM_VIDEOS):
        copies = [c for rank in clips for l, c in clips[rank] if l == v]
        assert not np.allclose(copies[0], copies[1])  # two independent draws of crop/flip/clip
    assert {l for l, _ in clips[0]} == {l for l, _ in clips[1]} == set(range(NUM_VIDEOS))  # copies on both ranks


def test_loader_mixup_batches_have_soft_targets_and_are_reproducible(tmp_path, data):
    cfg = _cfg(tmp_path, data, batch_size=3, mixup={"enable": True, "label_smoothing": 0.1})
    loader = create_loader(cfg, "train", output_dir=str(tmp_path / "o"), seed=7)

    def epoch(e):  # as fit() starts an epoch: the shuffle's seed, then the loader's epoch
        msds.config.set_seed(7 + e)
        loader.set_epoch(e)
        return list(loader.iter_numpy())

    first = epoch(0)
    assert len(first) == 2
    for b in first:
        assert b["video"].shape == (3, 3, 4, 24, 24) and b["video"].dtype == np.float32
        assert b["label"].shape == (3, NUM_VIDEOS) and b["label"].dtype == np.float32
        np.testing.assert_allclose(b["label"].sum(1), 1.0, atol=1e-6)
        assert b["label"].min() >= 0.1 / NUM_VIDEOS - 1e-7  # smoothing folded in: no zero entry
    again = epoch(0)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a["video"], b["video"])
        np.testing.assert_array_equal(a["label"], b["label"])
    assert not np.array_equal(first[0]["label"], epoch(1)[0]["label"])
    loader.batch_mix.enabled = False  # what precise BN reads: plain clips, int labels
    plain = epoch(0)
    assert plain[0]["label"].dtype == np.int32 and plain[0]["label"].shape == (3,)
