"""RandAugment / AugMix for video (src/data/auto_augment.py) against their definitions written out
here: timm's op lists and magnitude rules, the draw order replayed with an independent generator,
PIL's ImageOps / ImageEnhance / affine transforms applied frame by frame, and AugMix's convex
combination (Dirichlet mixing weights, Beta skip weight)."""
import math

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from src.data import auto_augment as aa
from src.data.errors import DataError
from src.data.transforms import build_transforms

FILL = (128, 128, 128)
# timm's RandAugment "increasing" list (inc1) and the AugMix list, written out
RAND_INC = ["AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing",
            "SolarizeAdd", "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing", "SharpnessIncreasing",
            "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"]
AUGMIX = ["AutoContrast", "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing", "SharpnessIncreasing",
          "Equalize", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing", "ShearX", "ShearY", "TranslateXRel",
          "TranslateYRel"]
GEOMETRIC = ("Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")


def level_arg(name, m, rng):
    """timm's magnitude (0..10) -> argument rules; signed ones negate when a uniform draw > 0.5."""
    sign = lambda v: -v if rng.random() > 0.5 else v  # noqa: E731
    base = name.replace("Increasing", "")
    if base in ("AutoContrast", "Equalize", "Invert"):
        return None
    if name == "Rotate":
        return sign(30.0 * m / 10)
    if name in ("ShearX", "ShearY"):
        return sign(0.3 * m / 10)
    if name in ("TranslateXRel", "TranslateYRel"):
        return sign(0.45 * m / 10)
    if name == "PosterizeIncreasing":
        return 4 - int(4 * m / 10)
    if name == "Posterize":
        return int(4 * m / 10)
    if name == "SolarizeIncreasing":
        return 256 - int(256 * m / 10)
    if name == "Solarize":
        return int(256 * m / 10)
    if name == "SolarizeAdd":
        return int(110 * m / 10)
    if name.endswith("Increasing"):  # Color / Contrast / Brightness / Sharpness
        return max(0.1, 1.0 + sign(0.9 * m / 10))
    return 1.8 * m / 10 + 0.1


def replay_rand(seed, m, n, mstd, p):
    """The RandAugment plan of seed ``seed``: n indices, then per op skip draw, magnitude, sign."""
    rng = np.random.default_rng(seed)
    plan = []
    for i in rng.integers(0, len(RAND_INC), size=n):
        if p < 1 and rng.random() > p:
            continue
        mag = min(10.0, max(0.0, rng.normal(m, mstd))) if mstd > 0 else m
        plan.append((RAND_INC[i], level_arg(RAND_INC[i], mag, rng)))
    return plan


def pil_op(im, name, arg):
    """One op on a PIL image, by PIL's own functions (bicubic, grey fill)."""
    base = name.replace("Increasing", "")
    w, h = im.size
    if base == "AutoContrast":
        return ImageOps.autocontrast(im)
    if base == "Equalize":
        return ImageOps.equalize(im)
    if base == "Invert":
        return ImageOps.invert(im)
    if base == "Posterize":  # 0 bits: black (newer Pillow refuses 0)
        return Image.new("RGB", im.size) if arg == 0 else ImageOps.posterize(im, arg) if arg < 8 else im
    if base == "Solarize":
        return ImageOps.solarize(im, arg)
    if base == "SolarizeAdd":
        return im.point([min(255, i + arg) if i < 128 else i for i in range(256)] * 3)
    if base in ("Color", "Contrast", "Brightness", "Sharpness"):
        return getattr(ImageEnhance, base)(im).enhance(arg)
    if base == "Rotate":
        return im.rotate(arg, resample=Image.BICUBIC, fillcolor=FILL)
    matrix = {"ShearX": (1, arg, 0, 0, 1, 0), "ShearY": (1, 0, 0, arg, 1, 0),
              "TranslateXRel": (1, 0, arg * w, 0, 1, 0), "TranslateYRel": (1, 0, 0, 0, 1, arg * h)}[base]
    return im.transform(im.size, Image.AFFINE, matrix, resample=Image.BICUBIC, fillcolor=FILL)


def pil_clip(clip, plan):
    frames = []
    for f in clip:
        im = Image.fromarray(f)
        for name, arg in plan:
            im = pil_op(im, name, arg)
        frames.append(np.asarray(im))
    return np.stack(frames)


def textured_clip(t=4, h=36, w=44, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (t, 9, 11, 3), dtype=np.uint8)
    return np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.BILINEAR)) for f in base])


# ----------------------------------------------------------------------------- the op sequence
@pytest.mark.parametrize("seed", range(12))
def test_rand_plan_replays_the_definition(seed):
    ra = aa.RandAugment("rand-m9-n2-mstd0.5-inc1")
    assert list(ra.ops) == RAND_INC
    plan = ra.draw(np.random.default_rng(seed))
    expected = replay_rand(seed, 9.0, 2, 0.5, 0.5)
    assert [n for n, _ in plan] == [n for n, _ in expected]
    for (_, a), (_, b) in zip(plan, expected):
        assert a == b if b is None else a == pytest.approx(b, abs=1e-12)


def test_fixed_magnitude_arguments():
    """m9 without noise (mstd0) and p1 (every op applied): the arguments are the rule's values."""
    ra = aa.RandAugment("rand-m9-n3-p1-inc1")
    seen = {}
    for seed in range(80):
        for name, arg in ra.draw(np.random.default_rng(seed)):
            seen.setdefault(name, set()).add(None if arg is None else round(arg, 9))
    assert set(seen) == set(RAND_INC)  # every op of the list is drawn
    assert seen["Rotate"] == {27.0, -27.0}
    assert seen["ShearX"] == {0.27, -0.27}
    assert seen["TranslateYRel"] == {0.405, -0.405}
    assert seen["PosterizeIncreasing"] == {1}  # 4 - int(3.6)
    assert seen["SolarizeIncreasing"] == {26}  # 256 - int(230.4)
    assert seen["SolarizeAdd"] == {99}
    assert seen["ColorIncreasing"] == {1.81, 0.19}
    assert seen["Invert"] == {None}


def test_non_increasing_list_and_its_rules():
    ra = aa.RandAugment("rand-m5-n2-p1")
    assert "Posterize" in ra.ops and "PosterizeIncreasing" not in ra.ops
    rng = np.random.default_rng(0)
    assert aa.LEVELS["Posterize"](5.0, rng, ra.hparams) == 2
    assert aa.LEVELS["Solarize"](5.0, rng, ra.hparams) == 128
    assert aa.LEVELS["Contrast"](5.0, rng, ra.hparams) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- one draw per clip
def test_identical_frames_stay_identical():
    frame = textured_clip(1)[0]
    clip = np.stack([frame] * 5)
    for policy in ("rand-m9-n3-mstd0.5-inc1", "augmix-m5-w3"):
        op = aa.auto_augment(policy)
        for seed in range(10):
            out = op(clip, rng=np.random.default_rng(seed))
            assert all(np.array_equal(out[0], out[t]) for t in range(1, 5)), (policy, seed)


@pytest.mark.parametrize("name", GEOMETRIC)
def test_geometric_op_is_the_same_for_every_frame(name):
    """Frames that differ (frame t = frame 0 brightened by 12 t) get the one drawn op: each output
    frame equals PIL's transform of that frame with the drawn angle / shear / shift."""
    base = (textured_clip(1)[0] // 2 + 20).astype(np.uint8)
    clip = np.stack([base + 12 * t for t in range(4)]).astype(np.uint8)
    ra = aa.RandAugment("rand-m7-n1-p1-inc1")
    seed = next(s for s in range(500) if replay_rand(s, 7.0, 1, 0.0, 1.0)[0][0] == name)
    plan = replay_rand(seed, 7.0, 1, 0.0, 1.0)
    out = ra(clip, rng=np.random.default_rng(seed))
    assert np.array_equal(out, pil_clip(clip, plan))


def test_photometric_ops_equal_pil():
    clip = textured_clip(3)
    clip[1] = clip[1] // 3 + 40  # a low-contrast frame: autocontrast / equalize have work to do
    for name, arg in [("AutoContrast", None), ("Equalize", None), ("Invert", None), ("Posterize", 3),
                      ("Solarize", 100), ("SolarizeAdd", 60), ("Color", 1.7), ("Contrast", 0.3),
                      ("Brightness", 1.4), ("Sharpness", 1.9), ("SharpnessIncreasing", 0.2)]:
        got = aa.apply_op(clip, name, arg, fill=FILL, interpolation="bicubic")
        assert np.array_equal(got, pil_clip(clip, [(name, arg)])), name


def test_randaugment_output_is_its_plan_applied_with_pil():
    clip = textured_clip(3)
    ra = aa.RandAugment("rand-m9-n2-mstd0.5-inc1")
    for seed in range(6):
        out = ra(clip, rng=np.random.default_rng(seed))
        assert np.array_equal(out, pil_clip(clip, replay_rand(seed, 9.0, 2, 0.5, 0.5))), seed


# ----------------------------------------------------------------------------- AugMix
@pytest.mark.parametrize("policy, depth", [("augmix-m5-w3-d2", 2), ("augmix-m3-w4", -1)])
def test_augmix_is_the_documented_convex_combination(policy, depth):
    """out = round(m x + (1 - m) clip(sum_i w_i chain_i(x), 0, 255)), w ~ Dirichlet(1, ..., 1),
    m ~ Beta(1, 1), chains of ``depth`` ops (-1: 1..3 each) at magnitudes uniform in [0, M]."""
    keys = {k[0]: k[1:] for k in policy.split("-")[1:]}  # m<M>, w<W>, d<D>
    mag, width = float(keys["m"]), int(keys["w"])
    clip = textured_clip(3)
    op = aa.AugMix(policy)
    assert list(op.ops) == AUGMIX
    for seed in range(4):
        rng = np.random.default_rng(seed)
        w = rng.dirichlet([1.0] * width)
        m = rng.beta(1.0, 1.0)
        mixed = np.zeros(clip.shape, np.float64)
        for wi in w:
            d = depth if depth > 0 else int(rng.integers(1, 4))
            plan = []
            for i in rng.integers(0, len(AUGMIX), size=d):
                plan.append((AUGMIX[i], level_arg(AUGMIX[i], rng.uniform(0.0, mag), rng)))
            mixed += wi * pil_clip(clip, plan)
        expected = np.rint(m * clip + (1 - m) * np.clip(mixed, 0, 255)).astype(np.uint8)
        out = op(clip, rng=np.random.default_rng(seed))
        assert np.array_equal(out, expected), seed
        assert math.isclose(w.sum(), 1.0) and 0 <= m <= 1


# ----------------------------------------------------------------------------- configuration
def test_policy_strings_and_errors():
    assert isinstance(aa.auto_augment("rand-m9-n2-mstd0.5-inc1"), aa.RandAugment)
    mix = aa.auto_augment("augmix-m5-w3-d2")
    assert isinstance(mix, aa.AugMix) and (mix.magnitude, mix.width, mix.depth) == (5.0, 3, 2)
    ra = aa.RandAugment("rand-m9-n2-mstd101")
    assert ra.magnitude_std == math.inf  # timm: mstd above 100 = uniform in [0, m]
    for bad in ("rand-x9", "rand-m9-n", "augmix-m5", "v0", "randm9"):
        with pytest.raises(DataError) as e:
            aa.auto_augment(bad) if bad != "augmix-m5" else aa.RandAugment(bad)
        assert "\n" not in str(e.value) and "policy" in str(e.value)


def test_in_a_transform_list_before_rescale():
    ops = build_transforms([{"type": "RandAugment", "policy": "rand-m9-n2-mstd0.5-inc1"},
                            {"type": "AugMix", "policy": "augmix-m3-w2"},
                            {"type": "AutoAugment", "policy": "rand-m5-n1"},
                            {"type": "Rescale"}, {"type": "ToCTHW"}])
    out = ops(textured_clip(4, 32, 32), rng=np.random.default_rng(0))
    assert out.shape == (3, 4, 32, 32) and out.dtype == np.float32
    with pytest.raises(ValueError, match="before Rescale"):
        aa.RandAugment()(textured_clip(2).astype(np.float32), rng=np.random.default_rng(0))
