"""The light Efficient-3DCNNs (3D MobileNet v1/v2, ShuffleNet v1/v2) built through the registry:
exact parameter counts of the paper's table, state-dict key names, forward parity with our torch
references (tests/helpers/e3d_torch_ref_light.py), channel shuffle, FLOPs, folding, training."""
import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor, nn

import torch

from src.engine.trainer import TrainStep
from src.errors import UserError
from src.models import build_model, count_params, fold_batchnorm
from src.models.e3d_common import channel_shuffle
from tests.helpers import e3d_torch_ref_light as ref

ms.set_device("CPU")


pytestmark = pytest.mark.usefixtures("pynative")  # every test here (fixture: tests/conftest.py)

FULL = (3, 16, 112, 112)

# (model, width, params at 600 classes, thop-style MFLOPs at 16x112x112): the facts sheet's "ours"
# columns (okankop/Efficient-3DCNNs instantiated; they equal the paper's table at its precision)
TABLE = [
    ("e3d_mobilenet", 0.5, 1_171_896, 97.9), ("e3d_mobilenet", 1.0, 3_912_984, 240.8),
    ("e3d_mobilenet", 1.5, 8_223_864, 428.8), ("e3d_mobilenet", 2.0, 14_104_536, 661.7),
    ("e3d_mobilenetv2", 0.2, 964_110, 63.3), ("e3d_mobilenetv2", 0.45, 1_399_834, 176.6),
    ("e3d_mobilenetv2", 0.7, 2_049_942, 324.7), ("e3d_mobilenetv2", 1.0, 3_122_648, 561.1),
    ("e3d_shufflenet", 0.5, 545_772, 77.8), ("e3d_shufflenet", 1.0, 1_521_504, 199.4),
    ("e3d_shufflenet", 1.5, 2_924_916, 346.7), ("e3d_shufflenet", 2.0, 4_758_888, 537.7),
    ("e3d_shufflenetv2", 0.25, 829_656, 116.1), ("e3d_shufflenetv2", 1.0, 1_914_180, 194.9),
    ("e3d_shufflenetv2", 1.5, 3_161_880, 291.2), ("e3d_shufflenetv2", 2.0, 6_639_816, 437.7),
]


def build(name, **kw):
    return build_model({"type": name, **kw})


@pytest.mark.parametrize("name,width,params,_mflops", TABLE)
def test_parameter_count_matches_the_table(name, width, params, _mflops):
    net = build(name, width_mult=width, num_classes=600)
    assert count_params(net) == params


@pytest.mark.parametrize("name,width,_params,mflops", TABLE)
def test_torch_reference_reproduces_the_paper_mflops(name, width, _params, mflops):
    # validates the reference the parity tests trust: its thop-style count (ReLUs, pools, Linear
    # 2*in-1 included) gives the sheet's MFLOPs, which depend on every stride and width
    _, thop = ref.count_ops(ref.build(name, width_mult=width), FULL)
    assert thop / 1e6 == pytest.approx(mflops, abs=0.051)


KEY_CASES = [("e3d_mobilenet", {"width_mult": 1.0}, 164), ("e3d_mobilenetv2", {"width_mult": 1.0}, 314),
             ("e3d_mobilenetv2", {"width_mult": 0.45}, 314), ("e3d_shufflenetv2", {"width_mult": 1.0}, 338),
             ("e3d_shufflenetv2", {"width_mult": 0.5}, 338)] + \
            [("e3d_shufflenet", {"width_mult": 1.0, "groups": g}, 296) for g in (1, 2, 3, 4, 8)] + \
            [("e3d_shufflenet", {"width_mult": 0.5, "groups": 3}, 296)]


@pytest.mark.parametrize("name,kw,torch_keys", KEY_CASES)
def test_parameter_names_and_shapes_mirror_the_reference_state_dict(name, kw, torch_keys):
    net = build(name, num_classes=600, **kw)
    tnet = ref.build(name, **kw)
    assert len(tnet.state_dict()) == torch_keys  # the sheet's key counts (incl. num_batches_tracked)
    expected = {k: v.shape for k, v in ref.ms_state(tnet).items()}
    got = {n: tuple(p.shape) for n, p in net.parameters_and_names()}
    assert got == expected


def test_documented_names_and_shapes():
    shapes = {n: tuple(p.shape) for n, p in build("e3d_mobilenetv2").parameters_and_names()}
    assert shapes["features.0.0.weight"] == (32, 3, 3, 3, 3)
    assert shapes["features.1.conv.0.weight"] == (32, 1, 3, 3, 3)
    assert shapes["features.1.conv.3.weight"] == (16, 32, 1, 1, 1)
    assert shapes["features.2.conv.3.weight"] == (96, 1, 3, 3, 3)
    assert shapes["features.18.0.weight"] == (1280, 320, 1, 1, 1)
    assert shapes["classifier.1.weight"] == (600, 1280)
    assert sum(n.endswith("moving_variance") for n in shapes) == 52
    shapes = {n: tuple(p.shape) for n, p in build("e3d_shufflenetv2").parameters_and_names()}
    assert shapes["features.4.banch1.0.weight"] == (116, 1, 3, 3, 3)
    assert shapes["features.4.banch1.2.weight"] == (116, 116, 1, 1, 1)
    assert shapes["features.5.banch2.3.weight"] == (116, 1, 3, 3, 3)
    assert "features.5.banch1.0.weight" not in shapes
    assert shapes["conv_last.0.weight"] == (1024, 464, 1, 1, 1)
    # ShuffleNet v1: conv1 ungrouped only where the input has 24 channels (layer1.0 at 1.0x)
    shapes = {n: tuple(p.shape) for n, p in build("e3d_shufflenet").parameters_and_names()}
    assert shapes["layer1.0.conv1.weight"] == (60, 24, 1, 1, 1)
    assert shapes["layer1.0.conv3.weight"] == (216, 20, 1, 1, 1)  # 240 - 24 outputs, groups 3
    shapes = {n: tuple(p.shape) for n, p in build("e3d_shufflenet", width_mult=2.0).parameters_and_names()}
    assert shapes["layer1.0.conv1.weight"] == (120, 16, 1, 1, 1)  # 48 inputs, groups 3


def _copy_from_torch(net, tnet):
    state = ref.ms_state(tnet)
    for n, p in net.parameters_and_names():
        p.set_data(Tensor(state[n]))


PARITY = [("e3d_mobilenet", {"width_mult": 0.5}, (2, 3, 8, 64, 64)),
          ("e3d_mobilenetv2", {"width_mult": 1.0}, (1, 3, 16, 112, 112)),
          ("e3d_shufflenet", {"width_mult": 1.0, "groups": 3}, (1, 3, 16, 64, 64)),
          ("e3d_shufflenetv2", {"width_mult": 1.0}, (2, 3, 8, 64, 48))]


@pytest.mark.parametrize("name,kw,shape", PARITY)
def test_eval_forward_matches_the_torch_reference(name, kw, shape):
    torch.manual_seed(0)
    tnet = ref.randomize_(ref.build(name, num_classes=11, **kw), seed=1).eval()
    net = build(name, num_classes=11, **kw)
    _copy_from_torch(net, tnet)
    net.set_train(False)
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    got = net(Tensor(x)).asnumpy()
    with torch.no_grad():
        want = tnet(torch.from_numpy(x)).numpy()
    assert got.shape == want.shape == (shape[0], 11)
    scale = np.abs(want).max()
    assert scale > 0.1 and np.abs(want - want.mean()).max() > 0.05 * scale  # logits not degenerate
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * scale)


def test_folded_batchnorm_gives_the_same_eval_scores():
    tnet = ref.randomize_(ref.build("e3d_mobilenetv2", num_classes=5, width_mult=0.45), seed=3).eval()
    net = build("e3d_mobilenetv2", num_classes=5, width_mult=0.45)
    _copy_from_torch(net, tnet)
    net.set_train(False)
    x = Tensor(np.random.default_rng(4).standard_normal((1, 3, 8, 48, 48)).astype(np.float32))
    before = net(x).asnumpy()
    fold_batchnorm(net)
    assert not any(isinstance(c, nn.BatchNorm2d) for _, c in net.cells_and_names())
    after = net(x).asnumpy()
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-4 * np.abs(before).max())
    for name in ("e3d_shufflenet", "e3d_shufflenetv2", "e3d_mobilenet"):  # every BN has its conv
        other = fold_batchnorm(build(name, num_classes=5, width_mult=0.5))
        assert not any(isinstance(c, nn.BatchNorm2d) for _, c in other.cells_and_names())


@pytest.mark.parametrize("groups,channels", [(2, 8), (3, 12), (4, 8), (3, 6)])
def test_channel_shuffle_formula(groups, channels):
    x = np.random.default_rng(0).standard_normal((2, channels, 2, 3, 1)).astype(np.float32)
    want = np.empty_like(x)
    per = channels // groups
    for i in range(groups):
        for j in range(per):
            want[:, j * groups + i] = x[:, i * per + j]
    np.testing.assert_array_equal(channel_shuffle(Tensor(x), groups).asnumpy(), want)


FLOP_CASES = [("e3d_mobilenet", {"width_mult": 1.0}), ("e3d_mobilenetv2", {"width_mult": 1.0}),
              ("e3d_shufflenet", {"width_mult": 1.0, "groups": 3}), ("e3d_shufflenet", {"width_mult": 1.0, "groups": 8}),
              ("e3d_shufflenetv2", {"width_mult": 1.0}), ("e3d_shufflenetv2", {"width_mult": 2.0})]


@pytest.mark.parametrize("name,kw", FLOP_CASES)
@pytest.mark.parametrize("shape", [FULL, (3, 16, 64, 48)])
def test_flops_equal_torch_hook_count(name, kw, shape):
    # conv/linear MACs + 2 per BN output element, counted by forward hooks on the torch reference
    ours, _ = ref.count_ops(ref.build(name, num_classes=600, **kw), shape)
    net = build(name, num_classes=600, **kw)
    assert net.flops(shape) == ours
    if shape == FULL:
        assert net.flops() == ours


def test_mobilenetv2_flops_by_hand():
    # 1.0x at 16x112x112, block by block (independent of the code and of the hooks)
    def conv(cin, cout, k, t, s, groups=1):  # MACs + BN of a conv producing (cout, t, s, s)
        n = cout * t * s * s
        return n * (cin // groups) * k ** 3 + 2 * n

    total = conv(3, 32, 3, 16, 56)
    total += conv(32, 32, 3, 16, 56, 32) + conv(32, 16, 1, 16, 56)  # t = 1 block
    cin, t, s = 16, 16, 56
    for c, n, stride in ((24, 2, 2), (32, 3, 2), (64, 4, 2), (96, 3, 1), (160, 3, 2), (320, 1, 1)):
        for i in range(n):
            hidden = cin * 6
            total += conv(cin, hidden, 1, t, s)
            if i == 0 and stride == 2:
                t, s = (t + 1) // 2, (s + 1) // 2
            total += conv(hidden, hidden, 3, t, s, hidden) + conv(hidden, c, 1, t, s)
            cin = c
    total += conv(320, 1280, 1, t, s) + 1280 * 600
    assert (t, s) == (1, 4)
    assert build("e3d_mobilenetv2").flops() == total
    assert total == 547_396_864


def test_invalid_settings_raise_one_line_user_errors():
    with pytest.raises(UserError, match="model.width_mult") as e:
        build("e3d_shufflenetv2", width_mult=0.75)
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="model.groups"):
        build("e3d_shufflenet", groups=5)
    with pytest.raises(UserError, match="model.width_mult"):
        build("e3d_shufflenet", width_mult=0.5, groups=8)  # stem 12 does not divide by 8
    with pytest.raises(UserError, match="model.width_mult"):
        build("e3d_mobilenet", width_mult=-1.0)
    with pytest.raises(UserError, match="model.width_mult"):
        build("e3d_mobilenetv2", width_mult=0.01)
    with pytest.raises(UserError, match="model.num_frames"):
        build("e3d_shufflenet", num_frames=8)


def test_contract_and_default_record():
    for name in ("e3d_mobilenet", "e3d_mobilenetv2", "e3d_shufflenet", "e3d_shufflenetv2"):
        net = build(name, width_mult=1.0 if name != "e3d_mobilenetv2" else 0.2, num_classes=9)
        cfg = net.pretrained_cfg
        assert (cfg.num_classes, cfg.num_frames, cfg.crop_size, cfg.sampling_rate) == (9, 16, 112, 1)
        assert (cfg.test_short_side, cfg.test_crop_size, cfg.value_range, cfg.channel_order) == (112, 112, 255.0,
                                                                                                 "BGR")
        assert cfg.mean == (114.7748, 107.7354, 99.4750) and cfg.std == (1.0, 1.0, 1.0)
        assert cfg.dataset == "kinetics600" and cfg.target_fps is None
        assert (net.num_frames, net.crop_size, net.num_classes) == (16, 112, 9)
        assert net.classifier_names() == ["classifier.1.weight", "classifier.1.bias"]
        assert isinstance(net.classifier[0], nn.Dropout)
        net.reset_classifier(4)
        assert net.num_classes == 4
        assert {p.name: p.shape for p in net.get_classifier().get_parameters()}["classifier.1.weight"][0] == 4


def test_init_follows_the_reference():
    np.random.seed(0)
    net = build("e3d_mobilenetv2", width_mult=1.0)
    p = {n: x.asnumpy() for n, x in net.parameters_and_names()}
    w = p["features.18.0.weight"]  # N(0, sqrt(2 / (1 * 1280)))
    assert w.std() == pytest.approx(np.sqrt(2 / 1280), rel=0.02) and abs(w.mean()) < 2e-3
    w = p["features.2.conv.3.weight"]  # dw: N(0, sqrt(2 / (27 * 96)))
    assert w.std() == pytest.approx(np.sqrt(2 / (27 * 96)), rel=0.05)
    assert p["classifier.1.weight"].std() == pytest.approx(0.01, rel=0.02)
    assert not p["classifier.1.bias"].any()
    assert (p["features.5.conv.1.gamma"] == 1).all() and not p["features.5.conv.1.beta"].any()
    net = build("e3d_shufflenetv2", width_mult=1.0)
    p = {n: x.asnumpy() for n, x in net.parameters_and_names()}
    for name, fan_in in (("conv_last.0.weight", 464), ("features.5.banch2.3.weight", 27),
                         ("classifier.1.weight", 1024), ("classifier.1.bias", 1024)):
        w, bound = p[name], 1 / np.sqrt(fan_in)  # torch default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
        assert w.std() == pytest.approx(bound / np.sqrt(3), rel=0.1)


@pytest.fixture
def graph_mode():
    ms.set_context(mode=ms.GRAPH_MODE)  # compiles once; PyNative steps are several times slower here
    yield
    ms.set_context(mode=ms.PYNATIVE_MODE)


@pytest.mark.parametrize("name,kw", [("e3d_mobilenet", {"width_mult": 0.25}),
                                     ("e3d_mobilenetv2", {"width_mult": 0.2}),
                                     ("e3d_shufflenet", {"width_mult": 0.25, "groups": 3}),
                                     ("e3d_shufflenetv2", {"width_mult": 0.25})])
def test_training_steps_lower_the_loss(graph_mode, name, kw):
    # 16 x 64 x 64 keeps a 1x2x2 map at the end: at 32 x 32 the last BatchNorms normalise single
    # positions of a small batch and the loss of these nets (torch's too) jumps around step to step
    ms.set_seed(0)
    np.random.seed(0)
    net = build(name, num_classes=4, num_frames=16, crop_size=64, dropout_rate=0.0, **kw)
    labels = np.arange(8) % 4
    cues = np.array([[2, 0, 0], [0, 2, 0], [0, 0, 2], [-2, -2, -2]], np.float32)  # a colour per class
    x = np.random.default_rng(0).standard_normal((8, 3, 16, 64, 64)).astype(np.float32)
    x += cues[labels][:, :, None, None, None]
    opt = nn.Momentum(net.trainable_params(), learning_rate=0.02, momentum=0.9)
    step = TrainStep(net, nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean"), opt)
    net.set_train(True)
    losses = [float(step(Tensor(x), Tensor(labels.astype(np.int32))).asnumpy()) for _ in range(8)]
    assert np.isfinite(losses).all()
    assert min(losses[-3:]) < 0.8 * losses[0], losses
