"""Efficient-3DCNNs SqueezeNet / ResNet / ResNeXt: sizes and keys against the reference sheet and our
torch reference (tests/helpers/e3d_torch_ref_heavy.py), forward parity, shortcut A, FLOPs, training."""
import numpy as np
import pytest
import mindspore as ms
import torch
from mindspore import Tensor, nn

from src.engine.trainer import TrainStep
from src.errors import UserError
from src.models import build_model, count_params, fold_batchnorm
from src.models.e3d_common import MaxPool3d
from src.models.e3d_resnet import BasicBlock, ShortcutA
from src.models.state_map import map_reference_state
from tests.helpers import e3d_torch_ref_heavy as R

ms.set_device("CPU")


def squeezenet(version="1.1", **kw):
    return build_model({"type": "e3d_squeezenet", "version": version, **kw})


def resnet(depth, shortcut, **kw):
    return build_model({"type": "e3d_resnet", "depth": depth, "shortcut": shortcut, **kw})


def resnext(depth, **kw):
    return build_model({"type": "e3d_resnext", "depth": depth, **kw})


def meta_ref(kind, *args, **kw):
    """Our torch reference on the meta device: shapes and keys only, built in a blink."""
    with torch.device("meta"):
        return getattr(R, kind)(*args, **kw)


def zero_state(model):
    """The reference's state dict as zero-stride numpy arrays of the right shapes (no memory)."""
    return {k: np.broadcast_to(np.float32(0), tuple(v.shape)) for k, v in model.state_dict().items()}


def load_reference(net, torch_model):
    state = map_reference_state(R.numpy_state(torch_model), net, source="ref")
    params = {k: ms.Parameter(Tensor(v), name=k) for k, v in state.items()}
    not_loaded, _ = ms.load_param_into_net(net, params, strict_load=True)
    assert not not_loaded
    return net


# ----------------------------------------------------------------------------- 1. sizes
# exact counts from /work/shared/reference/efficient-3dcnns.md (600 classes)
SHEET_PARAMS = [
    (lambda: squeezenet("1.1"), 2_145_560),
    (lambda: squeezenet("1.0"), 2_239_768),
    (lambda: resnet(18, "A"), 33_337_880),
    (lambda: resnet(18, "B"), 33_511_704),
    (lambda: resnet(50, "A"), 44_651_800),
    (lambda: resnet(50, "B"), 47_428_376),
    (lambda: resnet(101, "A"), 83_697_944),
    (lambda: resnet(101, "B"), 86_474_520),
    (lambda: resnext(101), 48_750_616),
]


@pytest.mark.parametrize("build,params", SHEET_PARAMS,
                         ids=["sq1.1", "sq1.0", "r18A", "r18B", "r50A", "r50B", "r101A", "r101B", "rx101"])
def test_parameter_counts_match_the_sheet(build, params):
    assert count_params(build()) == params


@pytest.mark.parametrize("depth,shortcut", [(10, "A"), (10, "B"), (34, "A"), (34, "B"), (152, "A"), (200, "B")])
def test_other_resnet_depths_match_the_torch_reference(depth, shortcut):
    ref = meta_ref("resnet", depth, shortcut)
    assert count_params(resnet(depth, shortcut)) == R.num_params(ref)


@pytest.mark.parametrize("depth", [50, 152])
def test_other_resnext_depths_match_the_torch_reference(depth):
    assert count_params(resnext(depth)) == R.num_params(meta_ref("resnext", depth))


# ----------------------------------------------------------------------------- 2. keys
@pytest.mark.parametrize("build,ref,n_keys", [
    (lambda: resnet(18, "A"), lambda: meta_ref("resnet", 18, "A"), 104),
    (lambda: resnet(50, "B"), lambda: meta_ref("resnet", 50, "B"), 320),
    (lambda: resnext(101), lambda: meta_ref("resnext", 101), 626),
    (lambda: squeezenet("1.1"), lambda: meta_ref("squeezenet", "1.1"), 177),
    (lambda: squeezenet("1.0"), lambda: meta_ref("squeezenet", "1.0"), None),
], ids=["r18A", "r50B", "rx101", "sq1.1", "sq1.0"])
def test_names_are_the_reference_keys(build, ref, n_keys):
    net, model = build(), ref()
    state = zero_state(model)
    if n_keys is not None:
        assert len(state) == n_keys  # incl. num_batches_tracked, as the sheet counts
    mapped = map_reference_state({"module." + k: v for k, v in state.items()}, net, source="ref")
    ours = {name: tuple(p.shape) for name, p in net.parameters_and_names()}
    assert set(mapped) == set(ours)
    assert len(ours) == len(state) - sum(k.endswith("num_batches_tracked") for k in state)
    for name, arr in mapped.items():
        assert arr.shape == ours[name], name


def test_a_few_names_and_shapes_from_the_sheet():
    r18 = {n: tuple(p.shape) for n, p in resnet(18, "B").parameters_and_names()}
    assert r18["conv1.weight"] == (64, 3, 7, 7, 7)
    assert r18["fc.weight"] == (600, 512)
    assert r18["layer2.0.downsample.0.weight"] == (128, 64, 1, 1, 1)
    assert r18["layer4.1.bn2.moving_variance"] == (512,)
    assert not any("downsample" in n for n, _ in resnet(18, "A").parameters_and_names())
    rx = {n: tuple(p.shape) for n, p in resnext(101).parameters_and_names()}
    assert rx["layer1.0.conv2.weight"] == (128, 4, 3, 3, 3)  # mid = 32 * int(128 / 32), 32 groups
    assert rx["layer4.0.conv3.weight"] == (2048, 1024, 1, 1, 1)
    assert rx["fc.weight"] == (600, 2048)
    sq = {n: tuple(p.shape) for n, p in squeezenet("1.1").parameters_and_names()}
    assert sq["features.0.weight"] == (64, 3, 3, 3, 3)
    assert sq["features.4.squeeze.weight"] == (16, 64, 1, 1, 1)
    assert sq["features.14.expand3x3.weight"] == (256, 64, 3, 3, 3)
    assert sq["classifier.1.weight"] == (600, 512, 1, 1, 1)
    assert {n for n in sq if n.startswith("features.") and n.split(".")[1] in ("2", "3", "6", "9", "12")} == set()


# ----------------------------------------------------------------------------- 3. forward parity
@pytest.mark.parametrize("kind,args,frames,size", [
    ("squeezenet", ("1.1",), 16, 112),  # the real geometry: pool (1, 4, 4)
    ("squeezenet", ("1.0",), 8, 64),
    ("resnet", (18, "A"), 8, 64),       # pool (1, 2, 2)
    ("resnet", (18, "B"), 8, 64),
    ("resnext", (50,), 8, 64),
], ids=["sq1.1-16x112", "sq1.0", "r18A", "r18B", "rx50"])
def test_forward_matches_the_torch_reference(pynative, kind, args, frames, size):
    model = R.randomize_(getattr(R, kind)(*args, num_classes=10, frames=frames, size=size), seed=3).eval()
    kw = dict(num_classes=10, num_frames=frames, crop_size=size)
    net = {"squeezenet": squeezenet, "resnet": resnet, "resnext": resnext}[kind](*args, **kw)
    load_reference(net, model).set_train(False)
    x = np.random.default_rng(1).standard_normal((1, 3, frames, size, size)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    got = net(Tensor(x)).asnumpy()
    assert got.shape == want.shape == (1, 10)
    assert np.abs(want).max() > 0.5  # the logits are not trivially small
    np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max(), rtol=0)
    if kind == "squeezenet":
        assert got.min() >= 0  # the logits pass a ReLU


def test_a_larger_clip_averages_the_pooled_positions(pynative):
    # built for 4 x 32 (pool 1x1x1), run on 4 x 64: a 1x2x2 map of class scores. The reference
    # flattens them to (N, classes * 4); we average the 4 positions.
    model = R.randomize_(R.squeezenet("1.1", num_classes=6, frames=4, size=32), seed=5).eval()
    net = load_reference(squeezenet("1.1", num_classes=6, num_frames=4, crop_size=32), model)
    net.set_train(False)
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 64, 64)).astype(np.float32)
    with torch.no_grad():
        flat = model(torch.from_numpy(x)).numpy()
    assert flat.shape == (2, 6 * 4)
    want = flat.reshape(2, 6, 4).mean(axis=2)
    got = net(Tensor(x)).asnumpy()
    np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max(), rtol=0)


def test_maxpool_pads_with_minus_infinity_like_torch(pynative):
    x = -1.0 - np.abs(np.random.default_rng(0).standard_normal((2, 3, 5, 7, 6))).astype(np.float32)
    want = torch.nn.functional.max_pool3d(torch.from_numpy(x), 3, 2, 1).numpy()
    got = MaxPool3d(3, 2, 1)(Tensor(x)).asnumpy()
    assert got.shape == want.shape == (2, 3, 3, 4, 3)
    np.testing.assert_array_equal(got, want)


def test_folding_batchnorm_keeps_the_outputs(pynative):
    for net in (resnet(18, "B", num_classes=5, num_frames=4, crop_size=32),
                squeezenet("1.1", num_classes=5, num_frames=4, crop_size=32)):
        rng = np.random.default_rng(0)
        for name, p in net.parameters_and_names():  # BN statistics away from identity
            if name.endswith(("moving_mean", "beta")):
                p.set_data(Tensor(0.2 * rng.standard_normal(p.shape).astype(np.float32)))
            elif name.endswith(("moving_variance", "gamma")):
                p.set_data(Tensor((0.5 + rng.random(p.shape)).astype(np.float32)))
        net.set_train(False)
        x = Tensor(rng.standard_normal((2, 3, 4, 32, 32)).astype(np.float32))
        before = net(x).asnumpy()
        fold_batchnorm(net)
        assert not [n for n, c in net.cells_and_names() if isinstance(c, nn.BatchNorm2d)]  # every BN folded
        after = net(x).asnumpy()
        np.testing.assert_allclose(after, before, atol=1e-4 * np.abs(before).max(), rtol=0)


# ----------------------------------------------------------------------------- 4. shortcut A
def test_shortcut_a_subsamples_and_appends_zero_channels(pynative):
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 6, 7)).astype(np.float32)
    got = ShortcutA(3, 8, 2)(Tensor(x)).asnumpy()
    want = np.zeros((2, 8, 3, 3, 4), np.float32)  # ceil(5/2), ceil(6/2), ceil(7/2)
    for t in range(3):
        for h in range(3):
            for w in range(4):
                want[:, :3, t, h, w] = x[:, :, 2 * t, 2 * h, 2 * w]
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ShortcutA(3, 5, 1)(Tensor(x)).asnumpy()[:, :3], x)


def test_no_gradient_flows_along_shortcut_a(pynative):
    def zeroed_block(downsample):
        block = BasicBlock(4, 8, stride=2, downsample=downsample)
        block.bn2.gamma.set_data(Tensor(np.zeros(8, np.float32)))  # the residual branch outputs beta = 0
        block.set_train(False)
        return block

    x = Tensor(np.random.default_rng(0).standard_normal((1, 4, 4, 6, 6)).astype(np.float32) + 2.0)
    block_a = zeroed_block(ShortcutA(4, 8, 2))
    out = block_a(x).asnumpy()
    assert np.abs(out[:, :4]).sum() > 0  # the shortcut carries x forward ...
    np.testing.assert_array_equal(out[:, :4], np.maximum(x.asnumpy()[:, :, ::2, ::2, ::2], 0))
    grad_a = ms.grad(lambda v: block_a(v).sum())(x).asnumpy()
    np.testing.assert_array_equal(grad_a, np.zeros_like(grad_a))  # ... but no gradient comes back
    # control: the same block with shortcut B passes gradient along its shortcut
    block_b = BasicBlock(4, 8, stride=2, downsample=nn.SequentialCell(
        [ms.nn.Conv3d(4, 8, 1, stride=2, has_bias=False), nn.Identity()]))
    block_b.bn2.gamma.set_data(Tensor(np.zeros(8, np.float32)))
    block_b.set_train(False)
    assert np.abs(ms.grad(lambda v: block_b(v).sum())(x).asnumpy()).sum() > 0


# ----------------------------------------------------------------------------- 5. FLOPs
@pytest.mark.parametrize("build,ref,paper_mflops", [
    (lambda: resnet(18, "A"), lambda: meta_ref("resnet", 18, "A"), 8323),
    (lambda: squeezenet("1.1"), lambda: meta_ref("squeezenet", "1.1"), 926),
    (lambda: resnet(50, "B"), lambda: meta_ref("resnet", 50, "B"), None),
    (lambda: resnext(101), lambda: meta_ref("resnext", 101), 9652),
], ids=["r18A", "sq1.1", "r50B", "rx101"])
def test_flops_match_hooks_on_the_torch_reference(build, ref, paper_mflops):
    net = build()
    want = R.count_flops(ref(), (3, 16, 112, 112))
    assert net.flops() == want
    assert net.flops((3, 16, 112, 112)) == want
    if paper_mflops:  # thop also counts ReLU, pools, additions: ours is a little lower
        assert 0.97 * paper_mflops < net.flops() / 1e6 < paper_mflops


def test_flops_at_another_clip_size():
    net = squeezenet("1.0", num_frames=8, crop_size=64)
    assert net.flops() == R.count_flops(meta_ref("squeezenet", "1.0", frames=8, size=64), (3, 8, 64, 64))


# ----------------------------------------------------------------------------- 6. training
@pytest.mark.parametrize("cfg,frames,size,batch,lr", [
    ({"type": "e3d_resnet", "depth": 10, "shortcut": "A"}, 4, 32, 2, 0.005),
    ({"type": "e3d_squeezenet", "version": "1.1", "dropout_rate": 0.0}, 4, 64, 4, 0.001),
    ({"type": "e3d_resnext", "depth": 50, "cardinality": 32}, 4, 32, 2, 0.005),
], ids=["resnet10A", "squeezenet1.1", "resnext50"])
def test_a_few_training_steps_reduce_the_loss(cfg, frames, size, batch, lr):
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_seed(0)
    net = build_model({**cfg, "num_classes": 4, "num_frames": frames, "crop_size": size})
    loss_fn = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    step = TrainStep(net, loss_fn, nn.Momentum(net.trainable_params(), learning_rate=lr, momentum=0.9))
    step.set_train(True)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((batch, 3, frames, size, size)).astype(np.float32))
    y = Tensor(np.arange(batch, dtype=np.int32) % 4)
    # 8 steps: over a 2-clip batch with train-mode BatchNorm the loss can bounce for a step or two
    # before it settles (ResNeXt-50: 1.30, 1.58, 1.80, 0.02, 0.65, then 0.00)
    losses = [float(step(x, y).asnumpy()) for _ in range(8)]
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0], losses


# ----------------------------------------------------------------------------- contract
def test_bad_values_name_the_key():
    with pytest.raises(UserError, match=r"model\.depth: expected one of 10, 18, 34, 50, 101, 152, 200, got 19"):
        resnet(19, "A")
    with pytest.raises(UserError, match=r"model\.shortcut"):
        resnet(18, "C")
    with pytest.raises(UserError, match=r"model\.depth: expected one of 50, 101, 152"):
        resnext(18)
    with pytest.raises(UserError, match=r"model\.version"):
        squeezenet("2.0")
    with pytest.raises(UserError, match=r"model\.num_frames"):
        resnet(18, "A", num_frames=0)
    with pytest.raises(UserError, match=r"model\.dropout_rate"):
        squeezenet("1.1", dropout_rate=1.0)
    assert squeezenet(1.0).version == "1.0"  # YAML reads `version: 1.0` as a number


def test_classifier_reset_and_record():
    net = resnet(10, "A", num_classes=7, num_frames=8, crop_size=64)
    assert net.get_classifier().weight.shape == (7, 512) and net.num_classes == 7
    net.reset_classifier(3)
    assert net.classifier_names() == ["fc.weight", "fc.bias"] and net.num_classes == 3
    sq = squeezenet("1.1", num_classes=7)
    sq.reset_classifier(5)
    assert sq.classifier_names() == ["classifier.1.weight", "classifier.1.bias"]
    assert sq.get_classifier().weight.shape == (5, 512, 1, 1, 1) and sq.num_classes == 5
    cfg = sq.pretrained_cfg
    assert (cfg.num_frames, cfg.crop_size, cfg.channel_order, cfg.value_range) == (16, 112, "BGR", 255.0)
    assert cfg.mean == (114.7748, 107.7354, 99.4750) and cfg.dataset == "kinetics600"
    assert net.pretrained_cfg.num_frames == 8 and net.pretrained_cfg.crop_size == 64
    assert (net.num_frames, net.crop_size) == (8, 64)


def test_init_follows_the_reference():
    net = resnet(18, "A")
    w = net.layer3[0].conv1.weight.asnumpy()
    fan_out = 256 * 27
    assert np.std(w) == pytest.approx(np.sqrt(2.0 / fan_out), rel=0.05)  # kaiming normal, fan_out
    assert np.all(net.layer3[0].bn1.gamma.asnumpy() == 1) and np.all(net.layer3[0].bn1.beta.asnumpy() == 0)
    fc = net.fc.weight.asnumpy()
    bound = 1 / np.sqrt(512)  # torch Linear default: U(-1/sqrt(in), 1/sqrt(in))
    assert np.abs(fc).max() <= bound and np.abs(fc).max() > 0.95 * bound
    assert np.abs(net.fc.bias.asnumpy()).max() <= bound


@pytest.mark.parametrize("build, last_bn", [(lambda **kw: resnet(10, "A", **kw), "bn2"),
                                            (lambda **kw: resnext(50, **kw), "bn3")])
def test_zero_init_residual_starts_every_block_as_its_shortcut(pynative, build, last_bn):
    kw = dict(num_classes=5, num_frames=4, crop_size=32)
    assert np.all(getattr(build(**kw).layer2[0], last_bn).gamma.asnumpy() == 1)  # off by default
    net = build(zero_init_residual=True, **kw)
    blocks = [b for layer in (net.layer1, net.layer2, net.layer3, net.layer4) for b in layer]
    assert all(np.all(getattr(b, last_bn).gamma.asnumpy() == 0) for b in blocks)
    assert all(np.all(b.bn1.gamma.asnumpy() == 1) for b in blocks)
    block = net.layer2[0]  # strided, with a shortcut: block(x) = ReLU(shortcut(x)) at the start
    block.set_train(False)
    x = Tensor(np.random.default_rng(0).standard_normal((2, block.dims[0], 2, 8, 8)).astype(np.float32))
    expected = np.maximum(block.downsample(x).asnumpy(), 0)
    np.testing.assert_allclose(block(x).asnumpy(), expected, rtol=0, atol=1e-6)
