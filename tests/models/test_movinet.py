"""MoViNet A0/A1/A2 against the facts sheet and an independent torch re-implementation
(tests/helpers/movinet_torch_ref.py, written from /work/shared/reference/movinet.md):

* parameter counts at 600 classes (the port's, exactly) for base and stream, and every key of a
  full-size port state dict mapped (A0/A1/A2, no forward pass);
* logits of base and stream A0 equal the torch reference's (random weights, BN statistics far
  from identity, non-zero ReZero scalars) within 1e-4 relative, on a small clip with odd sizes;
* streaming: whole clip = frame by frame = chunks of 3 and of 5 (1e-5 relative), the output
  after frame k = the whole-clip output of frames 0..k, states reset per video, re-fed frames
  change the result (each frame must be fed once), the frame count is global across calls.
"""
from __future__ import annotations

import numpy as np
import pytest

import mindspore as ms

from src.errors import UserError
from src.models import build_model, count_params, fold_batchnorm
from src.models.movinet_weights import MoViNetPortLayout

torch = pytest.importorskip("torch")
from tests.helpers import movinet_torch_ref as R  # noqa: E402

pytestmark = pytest.mark.usefixtures("pynative")

# (type, causal) -> trainable parameters of the port at 600 classes (facts sheet section 2)
COUNTS = {("movinet_a0", False): 3_111_799, ("movinet_a0", True): 3_748_031,
          ("movinet_a1", False): 4_690_296, ("movinet_a1", True): 6_447_352,
          ("movinet_a2", False): 5_249_562, ("movinet_a2", True): 7_326_962}
STATE_KEYS = {("movinet_a0", False): 385, ("movinet_a0", True): 451, ("movinet_a1", False): 592,
              ("movinet_a1", True): 694, ("movinet_a2", False): 638, ("movinet_a2", True): 752}

_NETS = {}


def loaded(name: str, causal: bool, conv_type: str, seed: int = 1, fold: bool = False):
    """(MindSpore net built through the registry with the port weights of a randomised torch
    reference, that reference), cached per variant. ``fold``: BatchNorm folded into the
    convolutions, as infer.py runs it (same outputs, fewer ops: the stream tests' many calls)."""
    key = (name, causal, conv_type, seed, fold)
    if key not in _NETS:
        torch.set_num_threads(1)
        ref = R.randomize_movinet_(R.MoViNetRef(name[-2:], causal=causal, conv_type=conv_type), seed=seed).eval()
        net = build_model({"type": name, "causal": causal, "conv_type": conv_type})
        state = {k: v.numpy() for k, v in ref.state_dict().items()}
        params, info = MoViNetPortLayout().convert(state, net, where="port.pth")
        not_loaded, unused = ms.load_param_into_net(
            net, {k: ms.Parameter(ms.Tensor(v), name=k) for k, v in params.items()}, strict_load=True)
        assert not not_loaded and not unused
        net.set_train(False)
        if fold:
            fold_batchnorm(net)
        _NETS[key] = (net, ref, info)
    return _NETS[key]


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


# ----------------------------------------------------------------------------------- structure
@pytest.mark.parametrize("name,causal", sorted(COUNTS))
def test_parameter_counts_and_every_port_key_mapped(name, causal):
    """Exact counts, and a full-size port state dict (random) converts with nothing left over."""
    conv_type = "2plus1d" if causal else "3d"
    net, ref, info = loaded(name, causal, conv_type)
    assert count_params(net) == COUNTS[(name, causal)]
    assert R.num_params(ref) == COUNTS[(name, causal)]  # the reference is the facts sheet's network
    assert info["read"] == STATE_KEYS[(name, causal)]
    n_bn = sum(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)) for m in ref.modules())
    assert info["dropped"] == n_bn
    # every parameter carries the reference value (spot check of reshaped (2+1)D weights)
    if causal:
        w = net.parameters_dict()["blocks.b1_l0.deep.conv_2.conv3d.weight"].asnumpy()
        np.testing.assert_array_equal(w[..., 0], ref.state_dict()["blocks.b1_l0.deep.conv_2.conv2d.weight"].numpy())
    alpha = net.parameters_dict()["blocks.b0_l0.alpha"].asnumpy()
    assert alpha == pytest.approx(float(ref.blocks.b0_l0.alpha.detach()), rel=1e-7) and alpha != 0


def test_records_and_flops():
    net = loaded("movinet_a0", False, "3d")[0]
    rec = net.pretrained_cfg
    assert (rec.num_frames, rec.crop_size, rec.num_classes, rec.test_short_side) == (50, 172, 600, 192)
    assert rec.mean == (0, 0, 0) and rec.std == (1, 1, 1) and rec.value_range == 1.0 and rec.channel_order == "RGB"
    assert rec.sampling_rate / rec.target_fps == pytest.approx(1 / 5)  # 5 fps
    assert rec.eval_output == "logits"
    # FLOPs: convolutions + 2 per BN output, by hand for the stem at 50 x 172^2: 50*86*86*8*(27+2)
    stem = 50 * 86 * 86 * 8 * (27 + 2)
    assert net.conv1.flops((3, 50, 172, 172))[0] == stem
    assert 2.6e9 < net.flops() < 2.9e9  # published: 2.7 GFLOPs per 50-frame video


# ----------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("causal,conv_type", [(False, "3d"), (True, "2plus1d")])
def test_logits_equal_the_torch_reference(causal, conv_type):
    net, ref, _ = loaded("movinet_a0", causal, conv_type)
    # odd and unequal sizes: 'same' padding before/after differs per stride-2 layer
    x = np.random.default_rng(0).random((2, 3, 5, 37, 46), dtype=np.float32)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    got = net(ms.Tensor(x)).asnumpy()
    assert expected.std() > 0.1 and np.abs(expected[0] - expected[1]).max() > 0.1  # non-trivial logits
    assert rel(got, expected) < 1e-4, rel(got, expected)


# ----------------------------------------------------------------------------------- streaming
def stream(net, clip: np.ndarray, chunks):
    """Logits after each chunk, fed in order from fresh states."""
    states = net.init_states(clip.shape[0], clip.shape[3], clip.shape[4])
    outs, start = [], 0
    for size in chunks:
        logits, states = net.construct_stream(ms.Tensor(clip[:, :, start:start + size]), states)
        outs.append(logits.asnumpy())
        start += size
    assert start == clip.shape[2]
    return outs, states


@pytest.fixture(scope="module")
def clip():
    return np.random.default_rng(3).random((1, 3, 7, 32, 32), dtype=np.float32)


def test_stream_equals_whole_clip_in_any_chunks(clip):
    net = loaded("movinet_a0", True, "2plus1d", fold=True)[0]
    whole = net(ms.Tensor(clip)).asnumpy()
    by_frame, states = stream(net, clip, [1] * 7)
    assert rel(by_frame[-1], whole) < 1e-5
    assert int(states[0].asnumpy()[0]) == 7  # frame_count: global across calls
    for chunks in ([3, 3, 1], [5, 2]):
        outs, _ = stream(net, clip, chunks)
        assert rel(outs[-1], whole) < 1e-5, chunks
        assert rel(outs[0], by_frame[chunks[0] - 1]) < 1e-5  # after frame k whatever the chunking
    # the output after frame k is the whole-clip output of frames 0..k
    prefix = net(ms.Tensor(clip[:, :, :3])).asnumpy()
    assert rel(by_frame[2], prefix) < 1e-5
    # it is a running average, not the last frame alone
    assert rel(by_frame[2], by_frame[6]) > 1e-3


def test_stream_state_layout_and_reset(clip):
    net = loaded("movinet_a0", True, "2plus1d", fold=True)[0]
    names, shapes = net.state_names(), net.state_shapes(2, 172, 172)
    # the facts sheet's A0 (2+1)D states at 172^2 (channels first here), plus one shared count
    buffers = {n: s for n, s in zip(names, shapes) if n.endswith("stream_buffer")}
    assert buffers == {"b1_l0_stream_buffer": (2, 80, 2, 22, 22), "b1_l1_stream_buffer": (2, 80, 2, 22, 22),
                       "b1_l2_stream_buffer": (2, 80, 2, 22, 22),
                       "b2_l0_stream_buffer": (2, 184, 4, 11, 11),
                       "b2_l1_stream_buffer": (2, 112, 2, 11, 11), "b2_l2_stream_buffer": (2, 184, 2, 11, 11),
                       "b3_l0_stream_buffer": (2, 184, 4, 11, 11), "b3_l1_stream_buffer": (2, 184, 2, 11, 11),
                       "b3_l2_stream_buffer": (2, 184, 2, 11, 11), "b3_l3_stream_buffer": (2, 184, 2, 11, 11),
                       "b4_l0_stream_buffer": (2, 384, 4, 6, 6)}
    assert sum(n.endswith("pool_buffer") for n in names) == 16 and names[0] == "frame_count"
    assert dict(zip(names, shapes))["head_pool_buffer"] == (2, 480, 1, 1, 1)
    states = net.init_states(2, 172, 172)
    assert [tuple(s.shape) for s in states] == list(shapes) and not any(s.asnumpy().any() for s in states)
    # a second video from fresh states gives the same output as the first (nothing kept inside)
    first, _ = stream(net, clip, [4, 3])
    again, _ = stream(net, clip, [4, 3])
    np.testing.assert_array_equal(first[-1], again[-1])


def test_refeeding_overlapping_frames_changes_the_output(clip):
    """The pitfall of Atze00#24: re-sending old frames counts them twice; feed new frames only."""
    net = loaded("movinet_a0", True, "2plus1d", fold=True)[0]
    once, _ = stream(net, clip[:, :, :4], [3, 1])
    states = net.init_states(1, 32, 32)
    _, states = net.construct_stream(ms.Tensor(clip[:, :, 0:3]), states)
    overlapped, states = net.construct_stream(ms.Tensor(clip[:, :, 1:4]), states)  # window 1..3 re-sent
    assert int(states[0].asnumpy()[0]) == 6
    assert rel(overlapped.asnumpy(), once[-1]) > 1e-3


def test_stream_of_the_causal_3d_network(clip):
    """Causal ``3d`` layers buffer the expanded input before the strided conv: same invariant,
    and the same logits as the torch reference's causal 3d network."""
    net, ref, _ = loaded("movinet_a0", True, "3d")
    x = clip[:, :, :5]
    whole = net(ms.Tensor(x)).asnumpy()
    with torch.no_grad():
        assert rel(whole, ref(torch.from_numpy(x)).numpy()) < 1e-4
    outs, _ = stream(net, x, [2, 1, 2])
    assert rel(outs[-1], whole) < 1e-5
    shapes = dict(zip(net.state_names(), net.state_shapes(1, 32, 32)))
    assert shapes["b1_l0_stream_buffer"] == (1, 80, 2, 8, 8)  # b1_l0's input size (32 -> 16 -> 8), before its /2


def test_streaming_needs_a_causal_network_in_eval_mode():
    base = loaded("movinet_a0", False, "3d")[0]
    with pytest.raises(UserError, match="causal"):
        base.init_states(1, 32, 32)
    net = loaded("movinet_a0", True, "2plus1d")[0]
    states = net.init_states(1, 32, 32)
    net.set_train(True)
    try:
        with pytest.raises(ValueError, match="eval mode"):
            net.construct_stream(ms.Tensor(np.zeros((1, 3, 1, 32, 32), np.float32)), states)
    finally:
        net.set_train(False)


def test_wrong_keys_are_refused_in_one_line():
    net, ref, _ = loaded("movinet_a0", True, "2plus1d")
    state = {k: v.numpy() for k, v in ref.state_dict().items()}
    state.pop("blocks.b2_l1.se.fc2.conv_1.conv2d.bias")
    state["blocks.b2_l1.extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(UserError) as e:
        MoViNetPortLayout().convert(state, net, where="x.pth")
    msg = str(e.value)
    assert "\n" not in msg and "unexpected blocks.b2_l1.extra.weight" in msg
    assert "missing blocks.b2_l1.se.fc2.conv_1.conv3d.bias" in msg


@pytest.mark.parametrize("act,gate", [("hard_swish", "hard_sigmoid"), ("swish", "sigmoid"),
                                      ("hard_swish", "hard_sigmoid_relu6")])
@pytest.mark.parametrize("mode", [ms.PYNATIVE_MODE, ms.GRAPH_MODE])
def test_one_frame_se_kernel_equals_the_se_ops(act, gate, mode):
    """A one-frame inference SE step runs as one C++ call where the pointwise kernels run; it must
    give the MindSpore ops' gated frame and running sum (the same SE built with native pointwise
    layers, the same weights), at a frame count other than 0 and batch 2."""
    from src.models import kernels
    from src.models.layers import use_impl
    from src.models.movinet_blocks import SqueezeExcitation
    if kernels.library_path("pointwise") is None:
        pytest.skip("no C++ compiler: the pointwise kernels cannot be built")
    fused = SqueezeExcitation(24, 16, causal=True, act=act, gate=gate)
    with use_impl(pointwise="native"):
        plain = SqueezeExcitation(24, 16, causal=True, act=act, gate=gate)
    assert fused.fused_step and not plain.fused_step
    rng = np.random.default_rng(7)
    for p in plain.get_parameters():
        p.set_data(ms.Tensor(rng.normal(0.0, 0.4, p.shape).astype(np.float32)))
    ms.load_param_into_net(fused, {p.name: ms.Parameter(p.data.copy(), name=p.name) for p in plain.get_parameters()},
                           strict_load=True)
    fused.set_train(False)
    plain.set_train(False)
    x = ms.Tensor((rng.standard_normal((2, 24, 1, 9, 7)) * 2).astype(np.float32))
    pool = ms.Tensor(rng.standard_normal((2, 24, 1, 1, 1)).astype(np.float32) * 5)
    count = ms.Tensor(np.array([4], np.int32))
    previous = ms.get_context("mode")
    ms.set_context(mode=mode)
    try:
        y, csum = ms.jit(fused.stream)(x, pool, count) if mode == ms.GRAPH_MODE else fused.stream(x, pool, count)
    finally:
        ms.set_context(mode=previous)
    y_ref, csum_ref = plain.stream(x, pool, count)
    assert rel(csum.asnumpy(), csum_ref.asnumpy()) < 1e-6
    assert rel(y.asnumpy(), y_ref.asnumpy()) < 1e-5
    # the gate is not trivially 0 or 1 everywhere: the SE's arithmetic is exercised
    g = (y_ref.asnumpy() / x.asnumpy()).reshape(2, 24, -1)[:, :, 0]
    assert 0.05 < float(np.mean((g > 0.01) & (g < 0.99)))


@pytest.mark.slow
def test_stream_step_in_graph_mode(clip):
    """``stream_step()`` compiles (state in, state out) and gives the PyNative stream's logits."""
    net = loaded("movinet_a0", True, "2plus1d", fold=True)[0]
    expected, _ = stream(net, clip[:, :, :3], [1, 2])
    step = net.stream_step()
    previous = ms.get_context("mode")
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        states = net.init_states(1, 32, 32)
        out = step(ms.Tensor(clip[:, :, :1]), *states)
        out = step(ms.Tensor(clip[:, :, 1:3]), *out[1:])
    finally:
        ms.set_context(mode=previous)
    assert int(out[1].asnumpy()[0]) == 3
    assert rel(out[0].asnumpy(), expected[-1]) < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("causal", [False, True])
def test_full_size_forward_a0(causal):
    """One clip at the record's size (50 x 172^2, batch 1) against the reference."""
    net, ref, _ = loaded("movinet_a0", causal, "2plus1d" if causal else "3d")
    x = np.random.default_rng(5).random((1, 3, 50, 172, 172), dtype=np.float32)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    assert rel(net(ms.Tensor(x)).asnumpy(), expected) < 1e-4
