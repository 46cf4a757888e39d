"""Pixel audit of every shipped config: a known pixel pushed through the resolved train, eval and
inference transform chains reaches the network as the family's reference feeds it.

The formulas are written out here from the references, not read from the code:

* X3D (SlowFast / pytorchvideo): RGB frames, ``(x / 255 - 0.45) / 0.225``.
* Efficient-3DCNNs Kinetics weights: OpenCV BGR frames, raw 0..255 minus the ActivityNet mean
  (114.7748, 107.7354, 99.4750) listed for channels 0, 1, 2, std 1.
* Efficient-3DCNNs frame data (Jester, UCF-101; also our from-scratch demos): PIL RGB frames,
  0..255 minus the same mean, std 1.
* MoViNet (TF Model Garden, the PyTorch port): RGB frames ``x / 255``, no mean or std.
"""
from __future__ import annotations

import glob
import os

import numpy as np
import pytest

import mindspore as ms  # noqa: F401  (before decord, via src.data)

from src.config import CONFIG_DIR, load_config
from src.data import build_transforms, infer_operations

ACTIVITYNET_MEAN = np.array([114.7748, 107.7354, 99.4750])
PIXEL_RGB = np.array([200.0, 100.0, 0.0])  # what a decoder hands over, red-green-blue


def x3d_formula(rgb: np.ndarray) -> np.ndarray:
    return (rgb / 255.0 - 0.45) / 0.225


def e3d_kinetics_formula(rgb: np.ndarray) -> np.ndarray:
    bgr = rgb[::-1]  # cv2.VideoCapture frames, never converted
    return bgr - ACTIVITYNET_MEAN


def e3d_frames_formula(rgb: np.ndarray) -> np.ndarray:
    return rgb - ACTIVITYNET_MEAN  # PIL RGB, norm_value 1, mean_dataset activitynet, std 1


def movinet_formula(rgb: np.ndarray) -> np.ndarray:
    return rgb / 255.0  # TF: tf.image.convert_image_dtype to float in [0, 1]


FAMILY = {
    # demo_e3d.yaml is the base of the e3d demos: on its own it keeps demo.yaml's X3D model
    x3d_formula: ["defaults", "x3d_xs", "x3d_s", "x3d_m", "x3d_l", "demo", "demo_rawframes", "demo_e3d",
                  *[f"x3d_{v}_{d}" for v in ("xs", "s", "m") for d in ("gpu8", "ascend8")],
                  "x3d_xs_scratch", "x3d_xs_multigrid"],
    e3d_kinetics_formula: ["e3d_kinetics600", "e3d_mobilenet", "e3d_mobilenetv2", "e3d_shufflenet",
                           "e3d_shufflenetv2", "e3d_squeezenet", "e3d_resnet18", "e3d_resnet50",
                           "e3d_resnet101", "e3d_resnext101"],
    e3d_frames_formula: ["jester", "sthv1", "demo_mobilenet", "demo_mobilenetv2", "demo_resnet",
                         "demo_resnext", "demo_shufflenet", "demo_shufflenetv2", "demo_squeezenet"],
    movinet_formula: [f"movinet_a{i}_{kind}" for i in range(3) for kind in ("base", "stream")] + ["demo_movinet"],
}
FORMULA = {name: f for f, names in FAMILY.items() for name in names}
CONFIGS = sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(CONFIG_DIR, "*.yaml")))


def test_every_shipped_config_is_audited():
    assert sorted(FORMULA) == CONFIGS, "classify the new config under its family's reference formula"


# Augmentations that change pixels on purpose (x3d_xs_scratch.yaml): the audit checks the chain
# around them; where they sit is checked below (RandAugment on uint8 before Rescale, erasing after
# Normalize, as SlowFast applies them)
AUGMENTS = ("RandAugment", "AugMix", "AutoAugment", "RandomErasing")


def chains(cfg):
    dl = cfg.data_loader
    train = [op for op in dl.train.map.operations if op["type"] not in AUGMENTS]
    return {"train": train, "eval": dl.eval.map.operations, "infer": infer_operations(cfg)}


@pytest.mark.parametrize("name", CONFIGS)
def test_augmentations_sit_where_their_definitions_need_them(name):
    ops = [op["type"] for op in load_config(os.path.join(CONFIG_DIR, f"{name}.yaml")).data_loader.train.map.operations]
    for i, kind in enumerate(ops):
        if kind in ("RandAugment", "AugMix", "AutoAugment"):
            assert i < ops.index("Rescale"), (name, ops)
        elif kind == "RandomErasing":
            assert i > ops.index("Normalize"), (name, ops)


@pytest.mark.parametrize("name", CONFIGS)
def test_a_known_pixel_reaches_the_network_as_the_reference_feeds_it(name):
    cfg = load_config(os.path.join(CONFIG_DIR, f"{name}.yaml"))
    frames = int(cfg.model.num_frames)
    clip = np.broadcast_to(PIXEL_RGB.astype(np.uint8), (frames, 150, 200, 3)).copy()
    expected = FORMULA[name](PIXEL_RGB)
    for split, ops in chains(cfg).items():
        out = build_transforms(ops)(clip, rng=np.random.default_rng(0))
        crop = int(cfg.model.crop_size) if split == "train" else int(cfg.infer.crop_size) if split == "infer" \
            else out.shape[-1]
        assert out.shape == (3, frames, crop, crop), (name, split)
        for c in range(3):
            assert np.allclose(out[c], expected[c], atol=1e-3), (name, split, c, float(out[c].flat[0]), expected[c])
