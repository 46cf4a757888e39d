"""Transforms built through the registry, as training builds them."""
import numpy as np
import pytest

import src.data  # noqa: F401  (registers the transforms)
from src.data.transforms import build_transforms, eval_operations
from src.registry import TRANSFORMS, RegistryError, build_from_cfg

MEAN, STD = [0.45, 0.45, 0.45], [0.225, 0.225, 0.225]


def T(cfg):
    return build_from_cfg(cfg, TRANSFORMS, where="test")


def coord_clip(t, h, w):
    """uint8 clip whose channel 0 holds the column (mod 256) and channel 1 the row."""
    clip = np.zeros((t, h, w, 3), np.uint8)
    clip[..., 0] = (np.arange(w) % 256)[None, None, :]
    clip[..., 1] = (np.arange(h) % 256)[None, :, None]
    return clip


def test_train_pipeline_shapes_and_dtype():
    ops = build_transforms([
        {"type": "RandomShortSideScale", "min_size": 40, "max_size": 48},
        {"type": "RandomCrop", "size": 36},
        {"type": "RandomHorizontalFlip", "prob": 0.5},
        {"type": "Rescale"}, {"type": "Normalize", "mean": MEAN, "std": STD}, {"type": "ToCTHW"}])
    out = ops(coord_clip(4, 32, 48), rng=np.random.default_rng(0))
    assert out.shape == (3, 4, 36, 36) and out.dtype == np.float32 and out.flags["C_CONTIGUOUS"]


def test_short_side_scale_keeps_aspect_for_landscape_and_portrait():
    assert T({"type": "ShortSideScale", "size": 64})(coord_clip(2, 32, 48)).shape == (2, 64, 96, 3)
    assert T({"type": "ShortSideScale", "size": 64})(coord_clip(2, 48, 32)).shape == (2, 96, 64, 3)
    jitter = T({"type": "RandomShortSideScale", "min_size": 40, "max_size": 44})
    rng = np.random.default_rng(0)
    sizes = {jitter(coord_clip(1, 32, 48), rng=rng).shape[1] for _ in range(40)}
    assert sizes == {40, 41, 42, 43, 44}


def test_flip_really_mirrors_and_can_be_turned_off():
    clip = coord_clip(3, 8, 10)
    flipped = T({"type": "RandomHorizontalFlip", "prob": 1.0})(clip, rng=np.random.default_rng(0))
    assert np.array_equal(flipped, clip[:, :, ::-1])
    assert flipped[0, 0, 0, 0] == 9 and flipped[0, 0, 9, 0] == 0
    off = T({"type": "RandomHorizontalFlip", "prob": 0.0})
    rng = np.random.default_rng(0)
    assert all(np.array_equal(off(clip, rng=rng), clip) for _ in range(50))
    half = T({"type": "RandomHorizontalFlip", "prob": 0.5})
    n = sum(half(clip, rng=rng)[0, 0, 0, 0] == 9 for _ in range(200))
    assert 60 < n < 140


@pytest.mark.parametrize("h,w,axis", [(40, 100, "x"), (100, 40, "y")])
def test_three_crop_positions_along_the_long_side(h, w, axis):
    crops = T({"type": "SpatialCrops", "size": 40, "num_crops": 3})
    clip = coord_clip(2, h, w)
    starts = []
    for k in range(3):
        out = crops(clip, crop_index=k)
        assert out.shape == (2, 40, 40, 3)
        starts.append((int(out[0, 0, 0, 1]), int(out[0, 0, 0, 0])))  # (row, col) of top-left
    if axis == "x":
        assert starts == [(0, 0), (0, 30), (0, 60)]  # left, centre, right
    else:
        assert starts == [(0, 0), (30, 0), (60, 0)]  # top, centre, bottom


def test_centre_crop_and_one_crop_spatialcrops_agree():
    clip = coord_clip(1, 50, 70)
    a = T({"type": "CenterCrop", "size": 30})(clip)
    b = T({"type": "SpatialCrops", "size": 30, "num_crops": 1})(clip, crop_index=2)
    assert np.array_equal(a, b) and (a[0, 0, 0, 1], a[0, 0, 0, 0]) == (10, 20)


def test_small_frames_are_upscaled_not_crashing():
    small = coord_clip(2, 20, 30)
    assert T({"type": "RandomCrop", "size": 32})(small, rng=np.random.default_rng(0)).shape == (2, 32, 32, 3)
    for k in range(3):
        assert T({"type": "SpatialCrops", "size": 64, "num_crops": 3})(small, crop_index=k).shape == (2, 64, 64, 3)


def test_rescale_and_normalize_values():
    clip = np.zeros((1, 2, 2, 3), np.uint8)
    clip[0, 0, 0] = 255
    x = T({"type": "Rescale"})(clip)
    assert x.dtype == np.float32 and x.max() == 1.0 and x.min() == 0.0
    y = T({"type": "Normalize", "mean": [0.5, 0.4, 0.3], "std": [0.5, 0.2, 0.1]})(x)
    np.testing.assert_allclose(y[0, 0, 0], [1.0, 3.0, 7.0], rtol=1e-6)
    np.testing.assert_allclose(y[0, 1, 1], [-1.0, -2.0, -3.0], rtol=1e-6)
    out = T({"type": "ToCTHW"})(y)
    assert out.shape == (3, 1, 2, 2) and out[2, 0, 0, 0] == pytest.approx(7.0)


def test_bad_transform_configs_are_clear():
    with pytest.raises(RegistryError, match="no 'RandomCorp'; did you mean 'RandomCrop'"):
        build_transforms([{"type": "RandomCorp", "size": 3}])
    with pytest.raises(RegistryError, match="unknown key 'map.operations\\[0\\].sise'"):
        build_transforms([{"type": "RandomCrop", "sise": 3}])
    with pytest.raises(ValueError, match="num_crops' must be 1 or 3"):
        T({"type": "SpatialCrops", "size": 8, "num_crops": 2})
    with pytest.raises(ValueError, match="put Rescale before Normalize"):
        T({"type": "Normalize", "mean": MEAN, "std": STD})(coord_clip(1, 4, 4))


def test_eval_operations_override_views():
    ops = [{"type": "ShortSideScale", "size": 182}, {"type": "SpatialCrops", "size": 160, "num_crops": 1},
           {"type": "Rescale"}, {"type": "ToCTHW"}]
    new = eval_operations(ops, num_crops=3, short_side=48, crop_size=40)
    assert new[0] == {"type": "ShortSideScale", "size": 48}
    assert new[1] == {"type": "SpatialCrops", "size": 40, "num_crops": 3}
    assert ops[1]["num_crops"] == 1  # input not mutated
    composed = build_transforms(new)
    assert composed.num_crops == 3
    assert composed(coord_clip(2, 30, 60), crop_index=2).shape == (3, 2, 40, 40)


# ----------------------------------------------------------------------------- Efficient-3DCNNs input
class _Pick:
    """A Generator stand-in whose integers(n) returns a chosen index."""

    def __init__(self, *values):
        self.values = list(values)

    def integers(self, n):
        return self.values.pop(0)


def test_multiscale_corner_crop_boxes_by_hand():
    from src.data.transforms import MultiScaleCornerCrop
    op = MultiScaleCornerCrop(size=112)
    # 240 x 320 frame: short side 240; scale 2^-0.5 -> side int(169.7) = 169
    assert op.box(240, 320, 2 ** -0.5, "c") == (round(120 - 84.5), round(160 - 84.5), 169)
    assert op.box(240, 320, 2 ** -0.5, "tl") == (0, 0, 169)
    assert op.box(240, 320, 2 ** -0.5, "tr") == (0, 320 - 169, 169)
    assert op.box(240, 320, 2 ** -0.5, "bl") == (240 - 169, 0, 169)
    assert op.box(240, 320, 0.5, "br") == (120, 200, 120)
    assert [round(s, 6) for s in op.SCALES] == [1.0, 0.840896, 0.707107, 0.594604, 0.5]
    clip = np.zeros((2, 240, 320, 3), np.uint8)
    clip[:, :120, 200:] = 255  # only the top-right 120 x 120 square is white
    out = op(clip, rng=_Pick(4, 2))  # scale 0.5, position "tr"
    assert out.shape == (2, 112, 112, 3) and out.min() == 255


def reference_multiscale_random_crop(frames, scales, size, rng):
    """The Efficient-3DCNNs MultiScaleRandomCrop, from its definition: one scale and one uniform
    top-left (tl_x, tl_y) per clip; crop_size = int(min(w, h) * scale); PIL crops the box
    (tl_x (w - s), tl_y (h - s), + s) (PIL rounds its coordinates) and resizes it bilinearly."""
    from PIL import Image
    scale = scales[int(rng.integers(len(scales)))]
    tl_x, tl_y = rng.random(), rng.random()
    out = []
    for f in frames:
        img = Image.fromarray(f)
        w, h = img.size
        s = int(min(w, h) * scale)
        x1, y1 = tl_x * (w - s), tl_y * (h - s)
        out.append(np.asarray(img.crop((x1, y1, x1 + s, y1 + s)).resize((size, size), Image.BILINEAR)))
    return np.stack(out)


@pytest.mark.parametrize("seed", range(6))
def test_multiscale_random_crop_matches_its_definition(seed):
    from src.config import load_config  # noqa: F401  (registers the transforms)
    from src.data import build_transforms
    from src.data.transforms import MULTI_SCALES
    data = np.random.default_rng(100 + seed)
    h, w = [(100, 176), (240, 320), (131, 97)][seed % 3]  # Jester-sized, 4:3, odd portrait
    clip = data.integers(0, 256, size=(3, h, w, 3), dtype=np.uint8)
    op = build_transforms([{"type": "MultiScaleRandomCrop", "size": 112}])
    got = op(clip, rng=np.random.default_rng(seed))
    want = reference_multiscale_random_crop(clip, MULTI_SCALES, 112, np.random.default_rng(seed))
    assert got.shape == (3, 112, 112, 3)
    assert np.array_equal(got, want)


def test_multiscale_random_crop_covers_positions_and_scales():
    from src.data.transforms import MultiScaleRandomCrop
    # 100 x 176 frame, scale 0.5: side 50; u = 0 -> left edge, u = 1 -> right edge (126 = 176 - 50)
    assert MultiScaleRandomCrop.box(100, 176, 0.5, 0.0, 0.0) == (0, 50, 0, 50)
    assert MultiScaleRandomCrop.box(100, 176, 0.5, 1.0, 1.0) == (50, 100, 126, 176)
    assert MultiScaleRandomCrop.box(100, 176, 1.0, 0.3, 0.9) == (0, 100, round(0.3 * 76), round(0.3 * 76) + 100)
    op = MultiScaleRandomCrop(size=16)
    rng = np.random.default_rng(0)
    lefts = {op.box(100, 176, 0.5, rng.random(), 0.0)[2] for _ in range(200)}
    assert min(lefts) < 10 and max(lefts) > 116  # uniform over the whole width, not 5 positions
    with pytest.raises(ValueError, match="scales"):
        MultiScaleRandomCrop(size=112, scales=[1.5])


def test_channel_order_and_value_range():
    from src.data.transforms import ChannelOrder, Rescale
    clip = np.zeros((1, 2, 2, 3), np.uint8)
    clip[..., 0], clip[..., 2] = 10, 200
    bgr = ChannelOrder("BGR")(clip)
    assert bgr[0, 0, 0].tolist() == [200, 0, 10]
    assert ChannelOrder("RGB")(clip) is clip
    raw = Rescale(255.0)(clip)
    assert raw.dtype == np.float32 and raw[0, 0, 0].tolist() == [10.0, 0.0, 200.0]
    np.testing.assert_allclose(Rescale()(clip)[0, 0, 0], [10 / 255, 0, 200 / 255], rtol=1e-6)


@pytest.mark.parametrize("value_range,tail", [(1.0, ["ToCTHW"]), (255.0, ["ToCTHW"]), (1.0, [])])
def test_compose_fuses_rescale_normalize_bit_exactly(value_range, tail):
    """Compose runs Rescale, Normalize[, ToCTHW] as one pass; the values must be exactly those of
    the formula applied step by step in numpy."""
    from src.data.transforms import build_transforms
    ops = [{"type": "Rescale", "value_range": value_range},
           {"type": "Normalize", "mean": [0.45, 0.4, 0.35], "std": [0.225, 0.25, 0.2]}] + [{"type": t} for t in tail]
    clip = np.random.default_rng(3).integers(0, 256, (3, 9, 11, 3), dtype=np.uint8)
    out = build_transforms(ops)(clip)
    x = clip.astype(np.float32)
    if value_range != 255.0:
        x = x * np.float32(value_range / 255.0)
    x = (x - np.float32([0.45, 0.4, 0.35])) / np.float32([0.225, 0.25, 0.2])
    expected = x.transpose(3, 0, 1, 2) if tail else x
    assert out.dtype == np.float32 and out.shape == expected.shape and out.flags["C_CONTIGUOUS"]
    assert np.array_equal(out, expected)
