"""MixUp / CutMix of clip batches (src/data/mixup.py), checked against the definitions written out here."""
import numpy as np
import pytest

from src.data.mixup import MixedBatch, MixUpCutMix, cutmix_box, smoothed_one_hot
from src.errors import UserError


def _clips(n=4, t=3, h=6, w=8, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 3, t, h, w)).astype(np.float32)


def test_mixup_with_a_known_lambda_gives_the_blended_clip_and_target():
    videos, labels = _clips(n=3), np.array([0, 2, 1], np.int32)
    mix = MixUpCutMix(num_classes=4, mixup_alpha=1.0, cutmix_alpha=0.0, label_smoothing=0.0)
    out, targets, lam = mix.apply(videos, labels, 0.3, use_cutmix=False)
    assert lam == 0.3
    for i in range(3):  # clip i blended with clip 2 - i
        np.testing.assert_allclose(out[i], 0.3 * videos[i].astype(np.float64) + 0.7 * videos[2 - i], rtol=0, atol=1e-6)
    expected = np.array([[0.3, 0.7, 0.0, 0.0],   # labels 0 and (reversed) 1
                         [0.0, 0.0, 1.0, 0.0],   # 2 with itself
                         [0.7, 0.3, 0.0, 0.0]])  # 1 and 0
    np.testing.assert_allclose(targets, expected, atol=1e-7)
    assert targets.dtype == np.float32 and out.dtype == np.float32


def test_label_smoothing_is_folded_into_the_mixed_targets():
    labels = np.array([0, 3], np.int32)
    mix = MixUpCutMix(num_classes=4, mixup_alpha=1.0, cutmix_alpha=0.0, label_smoothing=0.1)
    _, targets, _ = mix.apply(_clips(n=2), labels, 0.25, use_cutmix=False)
    off, on = 0.1 / 4, 1 - 0.1 + 0.1 / 4  # 0.025, 0.925
    row0 = [0.25 * on + 0.75 * off, off, off, 0.25 * off + 0.75 * on]
    row1 = [0.25 * off + 0.75 * on, off, off, 0.25 * on + 0.75 * off]
    np.testing.assert_allclose(targets, [row0, row1], atol=1e-7)
    np.testing.assert_allclose(targets.sum(1), 1.0, atol=1e-6)
    # a batch left unmixed (lambda 1) still carries the smoothed one-hot targets
    _, plain, _ = mix.apply(_clips(n=2), labels, 1.0, use_cutmix=False)
    np.testing.assert_allclose(plain, [[on, off, off, off], [off, off, off, on]], atol=1e-7)


def test_cutmix_box_is_clipped_and_lambda_is_one_minus_its_area():
    rng = np.random.default_rng(1)
    h, w = 20, 28
    clipped = 0
    for lam in rng.beta(1.0, 1.0, size=400):
        (y0, y1, x0, x1), lam_c = cutmix_box(h, w, float(lam), rng)
        assert 0 <= y0 <= y1 <= h and 0 <= x0 <= x1 <= w
        assert lam_c == pytest.approx(1 - (y1 - y0) * (x1 - x0) / (h * w), abs=1e-12)
        half_h, half_w = int(h * np.sqrt(1 - lam)) // 2, int(w * np.sqrt(1 - lam)) // 2
        assert y1 - y0 <= 2 * half_h and x1 - x0 <= 2 * half_w  # the unclipped box, cut at the border
        clipped += (y1 - y0 < 2 * half_h) or (x1 - x0 < 2 * half_w)
    assert clipped > 50  # the border case is exercised


def test_cutmix_pastes_one_box_into_every_frame_and_the_target_uses_the_clipped_area():
    n, t, h, w = 4, 3, 10, 12
    videos = np.broadcast_to(np.arange(1, n + 1, dtype=np.float32)[:, None, None, None, None],
                             (n, 3, t, h, w)).copy()  # clip i is the constant i + 1
    labels = np.array([0, 1, 2, 3], np.int32)
    mix = MixUpCutMix(num_classes=4, mixup_alpha=0.0, cutmix_alpha=1.0)
    rng = np.random.default_rng(5)
    seen_clipped = False
    for _ in range(40):
        out, targets, lam_c = mix.apply(videos, labels, float(rng.uniform(0.05, 0.95)), True, rng)
        for i in range(n):
            own = out[i] == i + 1
            partner = out[i] == n - i
            assert np.all(own | partner)
            # the same pasted region in every frame and channel
            assert np.all(partner == partner[0:1, 0:1])
            share = own[0, 0].mean()  # pixels of the clip that stayed its own
            assert share == pytest.approx(lam_c, abs=1e-9)
            expected = np.zeros(4)
            expected[labels[i]] += share
            expected[labels[n - 1 - i]] += 1 - share
            np.testing.assert_allclose(targets[i], expected, atol=1e-6)
        rows = np.nonzero(partner[0, 0].any(1))[0]
        seen_clipped |= len(rows) > 0 and (rows[0] == 0 or rows[-1] == h - 1)
    assert seen_clipped


def test_draw_follows_prob_switch_prob_and_the_beta_law():
    rng = np.random.default_rng(0)
    never = MixUpCutMix(num_classes=3, prob=0.0)
    assert all(never.draw(rng) == (1.0, False) for _ in range(100))
    only_cut = MixUpCutMix(num_classes=3, mixup_alpha=0.0, cutmix_alpha=1.0)
    assert all(only_cut.draw(rng)[1] for _ in range(100))
    only_mix = MixUpCutMix(num_classes=3, mixup_alpha=0.8, cutmix_alpha=0.0)
    assert not any(only_mix.draw(rng)[1] for _ in range(100))
    both = MixUpCutMix(num_classes=3, mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.6, switch_prob=0.3)
    draws = [both.draw(rng) for _ in range(6000)]
    mixed = [d for d in draws if d[0] != 1.0]
    assert len(mixed) / 6000 == pytest.approx(0.6, abs=0.03)
    cut = [lam for lam, c in mixed if c]
    assert len(cut) / len(mixed) == pytest.approx(0.3, abs=0.03)
    mix_lams = np.array([lam for lam, c in mixed if not c])
    a = 0.8  # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1))
    assert mix_lams.mean() == pytest.approx(0.5, abs=0.02)
    assert mix_lams.var() == pytest.approx(1 / (4 * (2 * a + 1)), rel=0.1)
    cut = np.array(cut)  # Beta(1, 1) = uniform: variance 1/12
    assert cut.var() == pytest.approx(1 / 12, rel=0.15)


class _Info:
    def __init__(self, batch):
        self.batch = batch

    def get_batch_num(self):
        return self.batch


class _Source:
    epoch = 0


def test_the_batch_op_is_seeded_by_epoch_shard_and_batch_and_can_be_switched_off():
    mix = MixUpCutMix(num_classes=4, label_smoothing=0.1)
    source = _Source()
    op = MixedBatch(mix, source, seed=3, shard_id=0, concat=False)
    items = [v for v in _clips(n=4)]
    labels = [np.array(i, np.int32) for i in range(4)]
    a1, t1 = op(items, labels, _Info(0))
    a2, t2 = op(items, labels, _Info(0))
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(t1, t2)
    assert t1.shape == (4, 4) and t1.dtype == np.float32
    others = [op(items, labels, _Info(b))[1] for b in range(1, 6)]
    source.epoch = 1
    others += [op(items, labels, _Info(0))[1]]
    others += [MixedBatch(mix, source, seed=3, shard_id=1, concat=False)(items, labels, _Info(0))[1]]
    assert all(not np.array_equal(t1, o) for o in others)
    op.enabled = False  # precise BN: plain clips, int labels
    plain, hard = op(items, labels, _Info(0))
    np.testing.assert_array_equal(plain, np.stack(items))
    np.testing.assert_array_equal(hard, np.arange(4))
    # clips_per_video > 1: items of K clips each are concatenated
    cat = MixedBatch(mix, source, seed=3, shard_id=0, concat=True)
    cat.enabled = False
    v, l = cat([_clips(n=2), _clips(n=2, seed=1)], [np.array([5, 5]), np.array([7, 7])], _Info(0))
    assert v.shape == (4, 3, 3, 6, 8) and l.tolist() == [5, 5, 7, 7]


def test_bad_settings_are_one_line_errors():
    with pytest.raises(UserError, match="both 0"):
        MixUpCutMix(num_classes=3, mixup_alpha=0.0, cutmix_alpha=0.0)
    with pytest.raises(UserError, match="switch_prob"):
        MixUpCutMix(num_classes=3, switch_prob=1.5)
    with pytest.raises(UserError, match="label_smoothing"):
        MixUpCutMix(num_classes=3, label_smoothing=1.0)
    with pytest.raises(UserError, match="at least 2"):
        MixUpCutMix(num_classes=3)(_clips(n=1), np.array([0]), np.random.default_rng(0))


def test_smoothed_one_hot_formula():
    np.testing.assert_allclose(smoothed_one_hot(np.array([2, 0]), 5, 0.2),
                               [[0.04, 0.04, 0.84, 0.04, 0.04], [0.84, 0.04, 0.04, 0.04, 0.04]], atol=1e-7)
