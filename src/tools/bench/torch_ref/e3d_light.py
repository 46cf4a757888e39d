"""PyTorch references of the light Efficient-3DCNNs (Köpüklü et al. 2019): the torch side of the
benchmark (``python -m src.tools.bench model``) and of the parity test helpers.

Written from /work/shared/reference/efficient-3dcnns.md (layer order, widths, strides, module
indices and init), independently of ``src/models/e3d_*.py``: 3D MobileNet (v1), MobileNetV2,
ShuffleNet (v1) and ShuffleNetV2. NCTHW, BatchNorm3d eps 1e-5 momentum 0.1.

Also here: ``ms_state`` (torch state dict -> MindSpore names by the documented rule) and
``count_ops`` (forward-hook operation counts: our MAC + 2/BN-element convention, and the
thop-style count the paper's MFLOPs column uses).
"""
from __future__ import annotations

import math
from typing import Dict, Sequence, Tuple

import numpy as np

from . import require_torch

torch = require_torch()  # one-line error without torch (a benchmark/test dependency, not a runtime one)
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, t, h, w = x.shape
    return x.view(n, groups, c // groups, t, h, w).transpose(1, 2).contiguous().view(n, c, t, h, w)


def _stem(cin: int, cout: int, act: type = nn.ReLU) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(cin, cout, 3, stride=(1, 2, 2), padding=1, bias=False),
                         nn.BatchNorm3d(cout), act(inplace=True))


def _head(x: torch.Tensor, classifier: nn.Module) -> torch.Tensor:
    x = F.avg_pool3d(x, x.shape[-3:])
    return classifier(x.flatten(1))


# ----------------------------------------------------------------------------- MobileNet v1
class MobileNetBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm3d(cin)
        self.conv2 = nn.Conv3d(cin, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm3d(cout)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(x)))


class MobileNet(nn.Module):
    CFG = [(64, 2), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 1)] * 2

    def __init__(self, num_classes: int = 600, width_mult: float = 1.0) -> None:
        super().__init__()
        cin = int(32 * width_mult)
        layers = [_stem(3, cin)]
        for c, s in self.CFG:
            cout = int(c * width_mult)
            layers.append(MobileNetBlock(cin, cout, s))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(cin, num_classes))

    def forward(self, x):
        return _head(self.features(x), self.classifier)


# ----------------------------------------------------------------------------- MobileNetV2
class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, t: int) -> None:
        super().__init__()
        hidden = round(cin * t)
        self.use_res = stride == 1 and cin == cout
        dw = [nn.Conv3d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False),
              nn.BatchNorm3d(hidden), nn.ReLU6(inplace=True)]
        pw_linear = [nn.Conv3d(hidden, cout, 1, bias=False), nn.BatchNorm3d(cout)]
        if t == 1:
            self.conv = nn.Sequential(*dw, *pw_linear)
        else:
            expand = [nn.Conv3d(cin, hidden, 1, bias=False), nn.BatchNorm3d(hidden), nn.ReLU6(inplace=True)]
            self.conv = nn.Sequential(*expand, *dw, *pw_linear)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]

    def __init__(self, num_classes: int = 600, width_mult: float = 1.0) -> None:
        super().__init__()
        cin = int(32 * width_mult)
        last = int(1280 * width_mult) if width_mult > 1.0 else 1280
        layers = [_stem(3, cin, nn.ReLU6)]
        for t, c, n, s in self.SETTINGS:
            cout = int(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers.append(nn.Sequential(nn.Conv3d(cin, last, 1, bias=False), nn.BatchNorm3d(last),
                                    nn.ReLU6(inplace=True)))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                k = m.kernel_size[0] * m.kernel_size[1] * m.kernel_size[2] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2.0 / k))
            elif isinstance(m, nn.BatchNorm3d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()
            elif isinstance(m, nn.Linear):
                m.weight.data.normal_(0, 0.01)
                m.bias.data.zero_()

    def forward(self, x):
        return _head(self.features(x), self.classifier)


# ----------------------------------------------------------------------------- ShuffleNet v1
SHUFFLENET_WIDTHS = {1: [24, 144, 288, 567], 2: [24, 200, 400, 800], 3: [24, 240, 480, 960],
                     4: [24, 272, 544, 1088], 8: [24, 384, 768, 1536]}


class ShuffleBottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, groups: int) -> None:
        super().__init__()
        self.stride, self.groups = stride, groups
        mid = cout // 4
        if stride == 2:
            cout = cout - cin
        self.conv1 = nn.Conv3d(cin, mid, 1, groups=1 if cin == 24 else groups, bias=False)
        self.bn1 = nn.BatchNorm3d(mid)
        self.conv2 = nn.Conv3d(mid, mid, 3, stride=stride, padding=1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm3d(mid)
        self.conv3 = nn.Conv3d(mid, cout, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm3d(cout)
        self.relu = nn.ReLU(inplace=True)
        if stride == 2:
            self.shortcut = nn.AvgPool3d((2, 3, 3), stride=2, padding=(0, 1, 1))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = channel_shuffle(out, self.groups)
        out = self.bn3(self.conv3(self.bn2(self.conv2(out))))
        if self.stride == 2:
            return self.relu(torch.cat([out, self.shortcut(x)], 1))
        return self.relu(out + x)


class ShuffleNet(nn.Module):
    def __init__(self, num_classes: int = 600, width_mult: float = 1.0, groups: int = 3) -> None:
        super().__init__()
        widths = [int(c * width_mult) for c in SHUFFLENET_WIDTHS[groups]]
        self.conv1 = _stem(3, widths[0])
        self.maxpool = nn.MaxPool3d(3, stride=2, padding=1)
        cin = widths[0]
        for li, (cout, n) in enumerate(zip(widths[1:], (4, 8, 4))):
            blocks = []
            for i in range(n):
                blocks.append(ShuffleBottleneck(cin, cout, 2 if i == 0 else 1, groups))
                cin = cout
            setattr(self, f"layer{li + 1}", nn.Sequential(*blocks))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(cin, num_classes))

    def forward(self, x):
        x = self.maxpool(self.conv1(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        return _head(x, self.classifier)


# ----------------------------------------------------------------------------- ShuffleNetV2
SHUFFLENETV2_WIDTHS = {0.25: [32, 64, 128, 1024], 0.5: [48, 96, 192, 1024], 1.0: [116, 232, 464, 1024],
                       1.5: [176, 352, 704, 1024], 2.0: [224, 488, 976, 2048]}


class ShuffleV2Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        half = cout // 2
        a_in = half if stride == 1 else cin
        self.banch2 = nn.Sequential(
            nn.Conv3d(a_in, half, 1, bias=False), nn.BatchNorm3d(half), nn.ReLU(inplace=True),
            nn.Conv3d(half, half, 3, stride=stride, padding=1, groups=half, bias=False), nn.BatchNorm3d(half),
            nn.Conv3d(half, half, 1, bias=False), nn.BatchNorm3d(half), nn.ReLU(inplace=True))
        if stride == 2:
            self.banch1 = nn.Sequential(
                nn.Conv3d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False), nn.BatchNorm3d(cin),
                nn.Conv3d(cin, half, 1, bias=False), nn.BatchNorm3d(half), nn.ReLU(inplace=True))

    def forward(self, x):
        if self.stride == 1:
            c = x.shape[1] // 2
            out = torch.cat([x[:, :c], self.banch2(x[:, c:])], 1)
        else:
            out = torch.cat([self.banch1(x), self.banch2(x)], 1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, num_classes: int = 600, width_mult: float = 1.0) -> None:
        super().__init__()
        outs = SHUFFLENETV2_WIDTHS[width_mult]
        self.conv1 = _stem(3, 24)
        self.maxpool = nn.MaxPool3d(3, stride=2, padding=1)
        blocks, cin = [], 24
        for cout, n in zip(outs[:3], (4, 8, 4)):
            for i in range(n):
                blocks.append(ShuffleV2Block(cin, cout, 2 if i == 0 else 1))
                cin = cout
        self.features = nn.Sequential(*blocks)
        self.conv_last = nn.Sequential(nn.Conv3d(cin, outs[3], 1, bias=False), nn.BatchNorm3d(outs[3]),
                                       nn.ReLU(inplace=True))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(outs[3], num_classes))

    def forward(self, x):
        x = self.conv_last(self.features(self.maxpool(self.conv1(x))))
        return _head(x, self.classifier)


def build(name: str, **kwargs) -> nn.Module:
    return {"e3d_mobilenet": MobileNet, "e3d_mobilenetv2": MobileNetV2, "e3d_shufflenet": ShuffleNet,
            "e3d_shufflenetv2": ShuffleNetV2}[name](**kwargs)


# ----------------------------------------------------------------------------- helpers
BN_RENAME = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def ms_state(model: nn.Module) -> Dict[str, np.ndarray]:
    """The state dict under MindSpore names: strip ``module.``, BN weight/bias/running_* ->
    gamma/beta/moving_*, drop num_batches_tracked (the conversion rule the models promise)."""
    bn_names = {n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm3d)}
    out = {}
    for key, value in model.state_dict().items():
        key = key[len("module."):] if key.startswith("module.") else key
        owner, leaf = key.rsplit(".", 1)
        if leaf == "num_batches_tracked":
            continue
        if owner in bn_names:
            leaf = BN_RENAME[leaf]
        out[f"{owner}.{leaf}"] = value.detach().numpy().copy()
    return out


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and non-trivial BN affine and running statistics (eval-mode parity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            elif isinstance(m, nn.Conv3d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2.0 / fan_in))
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / math.sqrt(m.in_features))
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model


def count_ops(model: nn.Module, shape: Sequence[int]) -> Tuple[int, float]:
    """Operation counts of one clip (C, T, H, W) from forward hooks on the torch modules:

    * ours: conv/linear multiply-adds + 2 per BatchNorm output element;
    * thop-style (the paper's MFLOPs, the repo's bundled thop): conv MACs, BN 2/elem, ReLU/ReLU6
      modules 1/elem, MaxPool ``prod(Tensor([kernel_size])) - 1`` per output (2 for the int kernel
      3, a quirk of that thop), AvgPool prod(kernel) per output, Linear (2*in - 1) per output;
      functional ops (F.relu, the head's F.avg_pool3d, adds, concat, shuffle) are not counted.
    """
    ours, thop = [0], [0.0]

    def hook(m, inputs, out):
        n = out.numel()
        if isinstance(m, nn.Conv3d):
            macs = n * (m.in_channels // m.groups) * int(np.prod(m.kernel_size))
            ours[0] += macs
            thop[0] += macs
        elif isinstance(m, nn.BatchNorm3d):
            ours[0] += 2 * n
            thop[0] += 2 * n
        elif isinstance(m, nn.Linear):
            ours[0] += n * m.in_features
            thop[0] += n * (2 * m.in_features - 1)
        elif isinstance(m, (nn.ReLU, nn.ReLU6)):
            thop[0] += n
        elif isinstance(m, nn.MaxPool3d):  # prod(Tensor([kernel_size])) - 1: an int 3 gives 2
            thop[0] += n * (int(np.prod(m.kernel_size)) - 1)
        elif isinstance(m, nn.AvgPool3d):  # (prod(kernel) - 1) adds + 1 division
            thop[0] += n * int(np.prod(m.kernel_size))

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    model.eval()
    with torch.no_grad():
        model(torch.zeros((1,) + tuple(shape)))
    for h in handles:
        h.remove()
    return ours[0], thop[0]
