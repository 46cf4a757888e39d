"""MoViNet A0/A1/A2 (Kondratyuk et al., CVPR 2021; TF Model Garden ``official/projects/movinet``),
base (non-causal ``3d``) and stream (causal, (2+1)D), with the PyTorch port's parameter names.

Data flow of A0 (50 x 172 x 172 clip; A1 and A2 in ``ARCHS``)::

    clip (N, 3, T, 172, 172), RGB in [0, 1] (no mean / std)
      -> conv1   1x3x3 /2 'same' (3->8) -> BN -> act                          (N, 8, T, 86, 86)
      -> b0      1 layer  [8]    first /2                                     (N, 8, T, 43, 43)
      -> b1      3 layers [32]   first /2                                     (N, 32, T, 22, 22)
      -> b2      3 layers [56]   first /2                                     (N, 56, T, 11, 11)
      -> b3      4 layers [56]                                                (N, 56, T, 11, 11)
      -> b4      4 layers [104]  first /2                                     (N, 104, T, 6, 6)
      -> conv7   1x1x1 (104->480) -> BN -> act                                (N, 480, T, 6, 6)
      == forward_features ==
      -> pool    mean over (T, H, W) (causal: the running mean since the last reset)   (N, 480, 1, 1, 1)
      -> classifier.0 1x1x1 (480->2048, bias) -> .1 act -> .2 dropout -> .3 1x1x1 (2048->classes, bias)
      -> logits (N, classes) (training and eval)

Each layer (``movinet_blocks.Block``): expand 1x1x1 -> depthwise kt x k x k (``3d``) or k x k
then kt x 1 x 1 (``2plus1d`` / ``3d_2plus1d``: the same network here, 5-D weights either way) ->
squeeze-excitation -> project 1x1x1 -> x ReZero ``alpha`` -> + skip. No temporal stride anywhere.

Base (``causal=False, conv_type="3d"``): swish, sigmoid SE gate, SE pooled over the whole clip,
symmetric temporal padding. Stream (``causal=True``, default ``conv_type="2plus1d"``): hard
swish, the port's hard sigmoid gate clamp(0.2x + 0.5, 0, 1), causal temporal padding, SE on
``concat([cumulative mean, frame mean])`` (a gate per frame), head pool a running mean. Spatial
padding is TF 'same' everywhere (the odd pixel after).

Streaming (causal networks only; ``docs/streaming.md``)::

    states = net.init_states(batch, height, width)        # zeros: start of every video
    logits, states = net.construct_stream(frames, states)  # frames (N, 3, t, H, W), any t >= 1
    step = net.stream_step()                               # the same as a Cell for GRAPH mode:
    logits, *states = step(frames, *states)                #   step(x, *states) -> (logits, *states)

``states`` is a tuple of Tensors in the order of ``net.state_names()``: ``frame_count`` (1,)
int32, the frames seen since the reset; per layer with kt > 1 ``b{i}_l{j}_stream_buffer``
(N, C, kt - 1, H', W'), the last kt - 1 inputs of its temporal convolution; per layer
``b{i}_l{j}_pool_buffer`` (N, E, 1, 1, 1), the running sum of the SE's per-frame means; and
``head_pool_buffer`` (N, P, 1, 1, 1), the running sum of the head's per-frame means. The logits
of a call cover every frame since the reset (a running average, not a window): whole clip,
frame by frame or in chunks of any size give the same logits, and the output after frame k is
the whole-clip output of frames 0..k. Feed each frame once (no overlapping windows); the
network must be in eval mode (BatchNorm statistics).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import mindspore as ms
from mindspore import Tensor, nn

from ..errors import UserError
from .base import PretrainedCfg, VideoClassifier, attach_pretrained_cfg, register_model
from .movinet_blocks import ACTIVATIONS, GATES, Block, Pointwise, Stem, make_activation, same_out

Shape = Tuple[int, int, int, int]  # (C, T, H, W) of one clip

CONV_TYPES = ("3d", "2plus1d", "3d_2plus1d")
HIDDEN = 2048

# (stem channels, stages, head project filters). A stage: (out channels, stride of its first layer,
# layers as (expand, kt, k)). TF's BLOCK_SPECS (= the port's config.py); "/533" = kt 5, k 3.
ARCHS: Dict[str, Tuple[int, List[Tuple[int, int, List[Tuple[int, int, int]]]], int]] = {
    "a0": (8, [(8, 2, [(24, 1, 5)]),
               (32, 2, [(80, 3, 3)] * 3),
               (56, 2, [(184, 5, 3), (112, 3, 3), (184, 3, 3)]),
               (56, 1, [(184, 5, 3)] + [(184, 3, 3)] * 3),
               (104, 2, [(384, 5, 3), (280, 1, 5), (280, 1, 5), (344, 1, 5)])], 480),
    "a1": (16, [(16, 2, [(40, 1, 5), (40, 3, 3)]),
                (40, 2, [(96, 3, 3), (120, 3, 3), (96, 3, 3), (96, 3, 3)]),
                (64, 2, [(216, 5, 3), (128, 3, 3), (216, 3, 3), (168, 3, 3), (216, 3, 3)]),
                (64, 1, [(216, 5, 3), (216, 3, 3), (216, 3, 3), (128, 3, 3), (128, 1, 5), (216, 3, 3)]),
                (136, 2, [(456, 5, 3), (360, 1, 5), (360, 1, 5), (360, 1, 5), (456, 1, 5), (456, 3, 3),
                          (544, 1, 3)])], 600),
    "a2": (16, [(16, 2, [(40, 1, 5), (40, 3, 3), (64, 3, 3)]),
                (40, 2, [(96, 3, 3), (120, 3, 3), (96, 3, 3), (96, 3, 3), (120, 3, 3)]),
                (72, 2, [(240, 5, 3), (160, 3, 3), (240, 3, 3), (192, 3, 3), (240, 3, 3)]),
                (72, 1, [(240, 5, 3), (240, 3, 3), (240, 3, 3), (240, 3, 3), (144, 1, 5), (240, 3, 3)]),
                (144, 2, [(480, 5, 3), (384, 1, 5), (384, 1, 5), (480, 1, 5), (480, 1, 5), (480, 3, 3),
                          (576, 1, 3)])], 640),
}

# The recipe's dropout (TF yamls movinet_a{0,1,2}[_stream]_k600_8x8), by (arch, causal).
DROPOUT = {("a0", False): 0.2, ("a0", True): 0.2, ("a1", False): 0.5, ("a1", True): 0.2,
           ("a2", False): 0.5, ("a2", True): 0.5}


class MoViNet(VideoClassifier):
    """conv1 -> blocks -> conv7 (``forward_features``) -> pool -> classifier (``forward_head``);
    causal networks also stream (module docstring)."""

    def __init__(self, *, arch: str, num_classes: int, causal: bool, conv_type: str, activation: str,
                 gate_activation: str, classifier_activation: str, dropout_rate: float,
                 drop_path_rate: float, num_frames: int, crop_size: int, conv_impl: str, stem_impl: str) -> None:
        super().__init__()
        stem_c, stages, project = ARCHS[arch]
        factorised = conv_type != "3d"
        self.variant, self.causal, self.conv_type = arch, causal, conv_type
        self.num_frames, self.crop_size = num_frames, crop_size
        self.conv1 = Stem(3, stem_c, act=activation, stem_impl=stem_impl)
        blocks, dim_in = OrderedDict(), stem_c
        total = sum(len(layers) for _, _, layers in stages)
        for i, (dim_out, stride, layers) in enumerate(stages):
            for j, (expand, kt, k) in enumerate(layers):
                blocks[f"b{i}_l{j}"] = Block(dim_in=dim_in, dim_out=dim_out, expand=expand, kt=kt, k=k,
                                             stride=stride if j == 0 else 1, causal=causal, factorised=factorised,
                                             act=activation, gate=gate_activation,
                                             drop_path=drop_path_rate * len(blocks) / total, conv_impl=conv_impl)
                dim_in = dim_out
        self.blocks = nn.SequentialCell(blocks)
        self.layer_names = tuple(blocks)
        self.conv7 = Pointwise(dim_in, project, act=activation)
        # the port's names: classifier.0 (dense9), .1 act, .2 dropout, .3 (dense10, N(0, 0.01))
        self.classifier = nn.SequentialCell([
            Pointwise(project, HIDDEN, norm=False, bias=True), make_activation(classifier_activation),
            nn.Dropout(p=dropout_rate) if dropout_rate > 0 else nn.Identity(),
            Pointwise(HIDDEN, num_classes, norm=False, bias=True, weight_std=0.01)])
        self.head_dims = (project, num_classes)
        self._num_classes = num_classes
        self.arch = (f"MoViNet-{arch.upper()} {'stream' if causal else 'base'} ({conv_type}, "
                          f"{'causal' if causal else 'non-causal'})")

    # -- whole clips
    def forward_features(self, x):
        _check_clip(x.shape)
        return self.conv7(self.blocks(self.conv1(x)))

    def forward_head(self, x):
        return self._classify(x.mean(axis=(2, 3, 4), keep_dims=True))

    def _classify(self, pooled):
        return self.classifier(pooled).reshape(pooled.shape[0], -1)

    def construct(self, x):
        return self.forward_head(self.forward_features(x))

    # -- streaming
    @property
    def streamable(self) -> bool:
        """Whether the network is causal (runs with ``construct_stream``)."""
        return bool(self.causal)

    def _check_streamable(self) -> None:
        if not self.causal:
            raise UserError(f"{self.model_name}: streaming needs a causal network (model.causal: true, "
                            f"the stream configs movinet_a*_stream.yaml); this one is the base (non-causal) model")

    def state_names(self) -> Tuple[str, ...]:
        """Names of the stream states, in the order ``init_states`` returns them."""
        self._check_streamable()
        names = ["frame_count"]
        for name, block in zip(self.layer_names, self.blocks):
            if block.buffered:
                names.append(f"{name}_stream_buffer")
            names.append(f"{name}_pool_buffer")
        return tuple(names + ["head_pool_buffer"])

    def state_shapes(self, batch: int, height: int, width: int) -> Tuple[Tuple[int, ...], ...]:
        """Shapes of the stream states for frames of ``height`` x ``width`` (``state_names`` order)."""
        self._check_streamable()
        h, w = same_out(height, 2), same_out(width, 2)
        shapes: List[Tuple[int, ...]] = [(1,)]
        for block in self.blocks:
            if block.buffered:
                shapes.append(block.deep.buffer_shape(batch, h, w))
            shapes.append((batch, block.dims[2], 1, 1, 1))
            h, w = same_out(h, block.dims[3]), same_out(w, block.dims[3])
        return tuple(shapes + [(batch, self.head_dims[0], 1, 1, 1)])

    def init_states(self, batch: int, height: int, width: int) -> Tuple[Tensor, ...]:
        """Zero states: the start of a video (call again to reset)."""
        shapes = self.state_shapes(batch, height, width)
        return tuple(Tensor(np.zeros(s, np.int32 if i == 0 else np.float32)) for i, s in enumerate(shapes))

    def construct_stream(self, x, states):
        """``(logits, states')`` for the frames ``x`` (N, 3, t, H, W) following ``states``; the
        logits cover every frame since the states were initialised."""
        if not self.causal:
            raise ValueError("construct_stream: the base (non-causal) MoViNet cannot stream; build it with causal=True")
        if self.training:
            raise ValueError("construct_stream: streaming needs eval mode (net.set_train(False)): batch statistics "
                             "per chunk break the clip/stream equality")
        count = states[0]
        out = ()
        i = 1
        x = self.conv1(x)
        for block in self.blocks:
            buffer = states[i] if block.buffered else None
            x, buffer, pool = block.stream(x, buffer, states[i + 1 if block.buffered else i], count)
            if block.buffered:
                out = out + (buffer,)
                i = i + 1
            out = out + (pool,)
            i = i + 1
        x = self.conv7(x)
        t = x.shape[2]
        head_sum = x.mean(axis=(3, 4), keep_dims=True).sum(axis=2, keepdims=True) + states[i]
        logits = self._classify(head_sum / (count.astype(x.dtype) + t))
        return logits, (count + t,) + out + (head_sum,)

    def stream_step(self) -> "MoViNetStreamStep":
        """``construct_stream`` as a Cell (GRAPH mode, export): ``step(x, *states) -> (logits, *states)``."""
        self._check_streamable()
        return MoViNetStreamStep(self)

    # -- classifier
    def get_classifier(self) -> nn.Cell:
        return self.classifier[3]

    def reset_classifier(self, num_classes: int) -> None:
        self.classifier[3] = Pointwise(HIDDEN, num_classes, norm=False, bias=True, weight_std=0.01)
        self.head_dims = (self.head_dims[0], num_classes)
        self._num_classes = num_classes
        self.update_parameters_name()

    # -- cost
    def flops(self, shape: Optional[Sequence[int]] = None) -> int:
        """Multiply-adds of one clip of ``shape`` (C, T, H, W), default the record's train clip:
        convolutions + 2 per BatchNorm output element (X3D's convention)."""
        shape = tuple(shape or (3, self.num_frames, self.crop_size, self.crop_size))
        total, shape = self.conv1.flops(shape)
        for block in self.blocks:
            macs, shape = block.flops(shape)
            total += macs
        _, t, h, w = shape
        dim_in, classes = self.head_dims
        return total + self.conv7.flops(t * h * w) + dim_in * HIDDEN + HIDDEN * classes


class MoViNetStreamStep(nn.Cell):
    """``step(x, *states) -> (logits, *states')``: one streaming call of a causal MoViNet as a Cell."""

    def __init__(self, net: MoViNet) -> None:
        super().__init__(auto_prefix=False)
        self.net = net

    def construct(self, x, *states):
        logits, states = self.net.construct_stream(x, states)
        return (logits,) + states


@ms.constexpr
def _check_clip(shape):
    if len(shape) != 5 or shape[1] != 3:
        raise ValueError(f"MoViNet expects clips of shape (N, 3, T, H, W), got {tuple(shape)}")


# ----------------------------------------------------------------------------------- builders
def create_movinet(arch: str, *, num_classes: int = 600, num_frames: int = 50, crop_size: int = 172,
                   causal: bool = False, conv_type: Optional[str] = None, activation: Optional[str] = None,
                   gate_activation: Optional[str] = None, classifier_activation: str = "swish",
                   dropout_rate: Optional[float] = None, drop_path_rate: float = 0.0,
                   conv_impl: str = "auto", stem_impl: str = "auto") -> MoViNet:
    """MoViNet ``arch`` (``a0``, ``a1``, ``a2``). ``conv_type`` defaults to ``3d`` (base) or
    ``2plus1d`` (causal); ``activation`` / ``gate_activation`` to the port's pairing with it
    (``3d``: swish / sigmoid; (2+1)D: hard_swish / hard_sigmoid); ``dropout_rate`` to the recipe's."""
    if arch not in ARCHS:
        raise UserError(f"MoViNet arch: expected one of {', '.join(ARCHS)}, got {arch!r}")
    if not isinstance(causal, bool):
        raise UserError(f"model.causal: expected true or false, got {causal!r}")
    conv_type = conv_type or ("2plus1d" if causal else "3d")
    if conv_type not in CONV_TYPES:
        raise UserError(f"model.conv_type: expected one of {', '.join(CONV_TYPES)}, got {conv_type!r}")
    factorised = conv_type != "3d"
    activation = activation or ("hard_swish" if factorised else "swish")
    gate_activation = gate_activation or ("hard_sigmoid" if factorised else "sigmoid")
    for key, value, allowed in (("activation", activation, ACTIVATIONS), ("gate_activation", gate_activation, GATES),
                                ("classifier_activation", classifier_activation, ACTIVATIONS)):
        if value not in allowed:
            raise UserError(f"model.{key}: expected one of {', '.join(allowed)}, got {value!r}")
    dropout_rate = DROPOUT[(arch, causal)] if dropout_rate is None else float(dropout_rate)
    if not 0.0 <= dropout_rate < 1.0:
        raise UserError(f"model.dropout_rate: expected a value in [0, 1), got {dropout_rate}")
    if not 0.0 <= float(drop_path_rate) < 1.0:
        raise UserError(f"model.drop_path_rate: expected a value in [0, 1), got {drop_path_rate}")
    for key, value in (("num_classes", num_classes), ("num_frames", num_frames), ("crop_size", crop_size)):
        if not isinstance(value, int) or value < 1:
            raise UserError(f"model.{key}: expected a positive integer, got {value!r}")
    return MoViNet(arch=arch, num_classes=num_classes, causal=causal, conv_type=conv_type, activation=activation,
                   gate_activation=gate_activation, classifier_activation=classifier_activation,
                   dropout_rate=dropout_rate, drop_path_rate=float(drop_path_rate), num_frames=num_frames,
                   crop_size=crop_size, conv_impl=conv_impl, stem_impl=stem_impl)


def _movinet_keywords(*, num_classes: int = 600, num_frames: int = 50, crop_size: int = 172, causal: bool = False,
                      conv_type: Optional[str] = None, activation: Optional[str] = None,
                      gate_activation: Optional[str] = None, classifier_activation: str = "swish",
                      dropout_rate: Optional[float] = None, drop_path_rate: float = 0.0,
                      conv_impl: str = "auto", stem_impl: str = "auto") -> None:
    """The ``model.*`` keys of every MoViNet variant (``create_movinet`` without ``arch``)."""


# Default records: TF's Kinetics-600 recipe. RGB in [0, 1] without mean/std; 50 frames at 5 fps
# (every 5th frame of a 25 fps video: TF's temporal_stride 5); eval: middle clip, short side 192
# (A2: 256), one centre crop of the train size.
def _k600(crop: int, test_short: int) -> PretrainedCfg:
    return PretrainedCfg(num_classes=600, num_frames=50, sampling_rate=5, crop_size=crop,
                         test_short_side=test_short, test_crop_size=crop, mean=(0.0, 0.0, 0.0),
                         std=(1.0, 1.0, 1.0), value_range=1.0, channel_order="RGB", target_fps=25.0,
                         eval_output="logits", dataset="kinetics600",
                         paper="Kondratyuk et al., MoViNets, CVPR 2021")


def _build(arch: str, name: str, kwargs: Dict[str, Any]) -> MoViNet:
    defaults = {"crop_size": PRETRAINED_CROPS[arch]}
    return attach_pretrained_cfg(create_movinet(arch, **{**defaults, **kwargs}), name, kwargs)


PRETRAINED_CROPS = {"a0": 172, "a1": 172, "a2": 224}


@register_model(_k600(172, 192), signature_of=_movinet_keywords)
def movinet_a0(**kwargs: Any) -> MoViNet:
    """MoViNet-A0 (50 x 172^2): base 3,111,799 / stream (2+1)D 3,748,031 parameters at 600 classes."""
    return _build("a0", "movinet_a0", kwargs)


@register_model(_k600(172, 192), signature_of=_movinet_keywords)
def movinet_a1(**kwargs: Any) -> MoViNet:
    """MoViNet-A1 (50 x 172^2): base 4,690,296 / stream (2+1)D 6,447,352 parameters at 600 classes."""
    return _build("a1", "movinet_a1", kwargs)


@register_model(_k600(224, 256), signature_of=_movinet_keywords)
def movinet_a2(**kwargs: Any) -> MoViNet:
    """MoViNet-A2 (50 x 224^2): base 5,249,562 / stream (2+1)D 7,326,962 parameters at 600 classes."""
    return _build("a2", "movinet_a2", kwargs)


__all__ = ["MoViNet", "MoViNetStreamStep", "create_movinet", "movinet_a0", "movinet_a1", "movinet_a2", "ARCHS",
           "CONV_TYPES"]
