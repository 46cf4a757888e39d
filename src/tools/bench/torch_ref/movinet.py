"""A torch MoViNet A0/A1/A2 written from the facts sheet (/work/shared/reference/movinet.md; not from
the MindSpore code), with the PyTorch port's module names, so ``state_dict()`` has the port's keys and shapes:
``3d`` layers are Conv3d / BatchNorm3d; ``2plus1d`` layers are Conv2d / BatchNorm2d on
rearranged tensors (frames folded into the batch for the k x k conv, H*W flattened for the
kt x 1 one), as the port computes them.

* ``MoViNetRef(arch, causal, conv_type, num_classes)``: whole-clip forward (causal: zero
  padding in front in time, cumulative SE means, head = mean over every frame).
* ``randomize_movinet_``: the shared randomiser (weights, BN affine and statistics) plus
  non-zero ReZero scalars.

It lives in the package (like the Efficient-3DCNNs references) because the stream latency
benchmark (``python -m src.tools.bench stream``) runs it; ``tests/helpers/movinet_torch_ref.py``
re-exports it for the parity tests (one copy).
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from src.tools.bench.torch_ref.e3d_heavy import randomize_ as randomize_any

# Block tables of the facts sheet: stem, stages [(out, stride, [(expand, kt, k), ...])], head P.
SPECS = {
    "a0": (8, [(8, 2, [(24, 1, 5)]), (32, 2, [(80, 3, 3)] * 3),
               (56, 2, [(184, 5, 3), (112, 3, 3), (184, 3, 3)]), (56, 1, [(184, 5, 3)] + [(184, 3, 3)] * 3),
               (104, 2, [(384, 5, 3), (280, 1, 5), (280, 1, 5), (344, 1, 5)])], 480),
    "a1": (16, [(16, 2, [(40, 1, 5), (40, 3, 3)]), (40, 2, [(96, 3, 3), (120, 3, 3), (96, 3, 3), (96, 3, 3)]),
                (64, 2, [(216, 5, 3), (128, 3, 3), (216, 3, 3), (168, 3, 3), (216, 3, 3)]),
                (64, 1, [(216, 5, 3), (216, 3, 3), (216, 3, 3), (128, 3, 3), (128, 1, 5), (216, 3, 3)]),
                (136, 2, [(456, 5, 3)] + [(360, 1, 5)] * 3 + [(456, 1, 5), (456, 3, 3), (544, 1, 3)])], 600),
    "a2": (16, [(16, 2, [(40, 1, 5), (40, 3, 3), (64, 3, 3)]),
                (40, 2, [(96, 3, 3), (120, 3, 3), (96, 3, 3), (96, 3, 3), (120, 3, 3)]),
                (72, 2, [(240, 5, 3), (160, 3, 3), (240, 3, 3), (192, 3, 3), (240, 3, 3)]),
                (72, 1, [(240, 5, 3), (240, 3, 3), (240, 3, 3), (240, 3, 3), (144, 1, 5), (240, 3, 3)]),
                (144, 2, [(480, 5, 3), (384, 1, 5), (384, 1, 5), (480, 1, 5), (480, 1, 5), (480, 3, 3),
                          (576, 1, 3)])], 640),
}


def hard_sigmoid_port(x):
    return (0.2 * x + 0.5).clamp(0.0, 1.0)


def swish(x):
    return x * torch.sigmoid(x)


def make_divisible(v: float, d: int = 8) -> int:
    new = max(d, int(v + d / 2) // d * d)
    return new + d if new < 0.9 * v else new


def tf_same(n: int, k: int, s: int) -> Tuple[int, int]:
    """(before, after) of TF 'same': the total is k - s if s divides n, else k - n mod s."""
    total = max(k - s, 0) if n % s == 0 else max(k - n % s, 0)
    return total // 2, total - total // 2


class Act(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class Unit(nn.Module):
    """conv (3d or 2d) -> [norm] -> [act], registered as ``conv3d``/``conv2d`` and ``norm``."""

    def __init__(self, cin: int, cout: int, kernel, *, twod: bool, stride=1, groups: int = 1, bias: bool = False,
                 norm: bool = True, act=None):
        super().__init__()
        conv_cls, bn_cls = (nn.Conv2d, nn.BatchNorm2d) if twod else (nn.Conv3d, nn.BatchNorm3d)
        conv = conv_cls(cin, cout, kernel, stride=stride, groups=groups, bias=bias)
        self.conv_name = "conv2d" if twod else "conv3d"
        setattr(self, self.conv_name, conv)
        self.norm = bn_cls(cout, eps=1e-3) if norm else None
        self.act = act

    def forward(self, x):
        x = getattr(self, self.conv_name)(x)
        if self.norm is not None:
            x = self.norm(x)
        return self.act(x) if self.act is not None else x


class PW(nn.Module):
    """1x1x1 conv unit ``conv_1`` on (B, C, T, H, W) (a 1x1 Conv2d on frames for 2plus1d)."""

    def __init__(self, cin, cout, *, twod, norm=True, act=None, bias=False):
        super().__init__()
        self.twod = twod
        self.conv_1 = Unit(cin, cout, 1, twod=twod, norm=norm, act=act, bias=bias)

    def forward(self, x):
        if not self.twod:
            return self.conv_1(x)
        b, c, t, h, w = x.shape
        y = self.conv_1(x.transpose(1, 2).reshape(b * t, c, h, w))
        return y.reshape(b, t, -1, h, w).transpose(1, 2)


def pad_same(x, k: int, s: int):
    h, w = x.shape[-2:]
    (t_, b_), (l_, r_) = tf_same(h, k, s), tf_same(w, k, s)
    return F.pad(x, (l_, r_, t_, b_))


class Deep(nn.Module):
    def __init__(self, c, kt, k, s, *, causal, twod, act):
        super().__init__()
        self.kt, self.k, self.s, self.causal, self.twod = kt, k, s, causal, twod
        if twod:
            self.conv_1 = Unit(c, c, (k, k), twod=True, stride=s, groups=c, act=act)
            if kt > 1:
                self.conv_2 = Unit(c, c, (kt, 1), twod=True, groups=c, act=act)
        else:
            self.conv_1 = Unit(c, c, (kt, k, k), twod=False, stride=(1, s, s), groups=c, act=act)

    def _tpad(self, x):
        front = self.kt - 1 if self.causal else (self.kt - 1) // 2
        back = 0 if self.causal else (self.kt - 1) // 2
        return F.pad(x, (0, 0, 0, 0, front, back))

    def forward(self, x):
        x = pad_same(x, self.k, self.s)
        if not self.twod:
            return self.conv_1(self._tpad(x))
        b, c, t, h, w = x.shape
        y = self.conv_1(x.transpose(1, 2).reshape(b * t, c, h, w))
        ho, wo = y.shape[-2:]
        y = y.reshape(b, t, c, ho, wo).transpose(1, 2)
        if self.kt == 1:
            return y
        y = self._tpad(y)
        z = self.conv_2(y.reshape(b, c, y.shape[2], ho * wo))
        return z.reshape(b, c, t, ho, wo)


class SE(nn.Module):
    def __init__(self, c, *, causal, twod, act, gate):
        super().__init__()
        m = 2 if causal else 1
        hidden = make_divisible(0.25 * c * m, 8)
        self.causal, self.gate = causal, gate
        self.fc1 = PW(c * m, hidden, twod=twod, norm=False, act=act, bias=True)
        self.fc2 = PW(hidden, c, twod=twod, norm=False, bias=True)

    def forward(self, x):
        if self.causal:
            space = x.mean(dim=(3, 4), keepdim=True)
            n = torch.arange(1, x.shape[2] + 1, dtype=x.dtype).view(1, 1, -1, 1, 1)
            s = torch.cat([torch.cumsum(space, dim=2) / n, space], dim=1)
        else:
            s = x.mean(dim=(2, 3, 4), keepdim=True)
        return x * self.gate(self.fc2(self.fc1(s)))


class AvgPoolSame(nn.Module):
    """1x3x3 stride 1x2x2 'same' average, padded positions not counted (sum / count of ones)."""

    def forward(self, x):
        xp = pad_same(x, 3, 2)
        ones = pad_same(torch.ones_like(x[:1, :1]), 3, 2)
        return F.avg_pool3d(xp, (1, 3, 3), (1, 2, 2)) / F.avg_pool3d(ones, (1, 3, 3), (1, 2, 2))


class Bneck(nn.Module):
    def __init__(self, cin, cout, e, kt, k, s, *, causal, twod, act, gate):
        super().__init__()
        self.expand = PW(cin, e, twod=twod, act=act) if e != cout else None
        self.deep = Deep(e, kt, k, s, causal=causal, twod=twod, act=act)
        self.se = SE(e, causal=causal, twod=twod, act=act, gate=gate)
        self.project = PW(e, cout, twod=twod)
        self.res = None
        if not (s == 1 and cin == cout):
            self.res = nn.Sequential(*([AvgPoolSame()] if s == 2 else []), PW(cin, cout, twod=twod))
        self.alpha = nn.Parameter(torch.tensor(0.0))

    def forward(self, x):
        skip = self.res(x) if self.res is not None else x
        y = self.expand(x) if self.expand is not None else x
        return skip + self.alpha * self.project(self.se(self.deep(y)))


class Stem(nn.Module):
    def __init__(self, c, *, twod, act):
        super().__init__()
        self.twod = twod
        self.conv_1 = Unit(3, c, (3, 3) if twod else (1, 3, 3), twod=twod, stride=2 if twod else (1, 2, 2), act=act)

    def forward(self, x):
        x = pad_same(x, 3, 2)
        if not self.twod:
            return self.conv_1(x)
        b, c, t, h, w = x.shape
        y = self.conv_1(x.transpose(1, 2).reshape(b * t, c, h, w))
        return y.reshape(b, t, -1, *y.shape[-2:]).transpose(1, 2)


class MoViNetRef(nn.Module):
    def __init__(self, arch: str = "a0", *, causal: bool = False, conv_type: str = "3d", num_classes: int = 600):
        super().__init__()
        twod = conv_type == "2plus1d"
        act = Act(F.hardswish) if twod else Act(swish)
        gate = hard_sigmoid_port if twod else torch.sigmoid
        stem, stages, p = SPECS[arch]
        self.conv1 = Stem(stem, twod=twod, act=act)
        blocks = {}
        cin = stem
        for i, (cout, s, layers) in enumerate(stages):
            for j, (e, kt, k) in enumerate(layers):
                blocks[f"b{i}_l{j}"] = Bneck(cin, cout, e, kt, k, s if j == 0 else 1, causal=causal, twod=twod,
                                             act=act, gate=gate)
                cin = cout
        self.blocks = nn.Sequential()
        for name, blk in blocks.items():
            self.blocks.add_module(name, blk)
        self.conv7 = PW(cin, p, twod=twod, act=act)
        self.classifier = nn.Sequential(PW(p, 2048, twod=twod, norm=False, bias=True), Act(swish), nn.Dropout(0.2),
                                        PW(2048, num_classes, twod=twod, norm=False, bias=True))

    def forward(self, x):
        x = self.conv7(self.blocks(self.conv1(x)))
        return self.classifier(x.mean(dim=(2, 3, 4), keepdim=True)).flatten(1)


@torch.no_grad()
def randomize_movinet_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Weights and BN statistics far from init (the shared randomiser; each block's project BN
    small so 15-26 residual sums stay O(1)) and ReZero scalars in [0.5, 1.5)."""
    randomize_any(model, seed, small_bn=lambda name: name.endswith("project.conv_1.norm"), small_scale=0.3)
    g = torch.Generator().manual_seed(seed + 1)
    for name, p in model.named_parameters():
        if name.endswith(".alpha"):
            p.fill_(0.5 + float(torch.rand((), generator=g)))
    return model


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
