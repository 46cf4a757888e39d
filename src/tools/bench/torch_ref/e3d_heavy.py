"""PyTorch reference SqueezeNet / ResNet / ResNeXt of Efficient-3DCNNs: the torch side of the
benchmark (``python -m src.tools.bench model``) and of the parity test helpers.

Written from /work/shared/reference/efficient-3dcnns.md (not from the MindSpore port), with the
reference's module names, so ``state_dict()`` keys are the checkpoint keys (without ``module.``).

* ``squeezenet(version, ...)``, ``resnet(depth, shortcut, ...)``, ``resnext(depth, cardinality, ...)``
* ``randomize_``: weights, BN affine and running statistics drawn far from init / identity.
* ``count_flops``: conv/linear multiply-adds + 2 per BN output element, by forward hooks.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Sequence

from . import require_torch

torch = require_torch()  # one-line error without torch (a benchmark/test dependency, not a runtime one)
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

BLOCKS = {10: [1, 1, 1, 1], 18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3],
          152: [3, 8, 36, 3], 200: [3, 24, 36, 3]}


def _init_(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        elif isinstance(m, nn.BatchNorm3d):
            m.weight.data.fill_(1)
            m.bias.data.zero_()


# ----------------------------------------------------------------------------- SqueezeNet
class Fire(nn.Module):
    def __init__(self, inplanes: int, squeeze: int, e1: int, e3: int, bypass: bool = False) -> None:
        super().__init__()
        self.bypass = bypass
        self.relu = nn.ReLU()
        self.squeeze = nn.Conv3d(inplanes, squeeze, kernel_size=1)
        self.squeeze_bn = nn.BatchNorm3d(squeeze)
        self.expand1x1 = nn.Conv3d(squeeze, e1, kernel_size=1)
        self.expand1x1_bn = nn.BatchNorm3d(e1)
        self.expand3x3 = nn.Conv3d(squeeze, e3, kernel_size=3, padding=1)
        self.expand3x3_bn = nn.BatchNorm3d(e3)

    def forward(self, x):
        s = self.relu(self.squeeze_bn(self.squeeze(x)))
        out = torch.cat([self.expand1x1_bn(self.expand1x1(s)), self.expand3x3_bn(self.expand3x3(s))], 1)
        if self.bypass:
            out = out + x
        return self.relu(out)


class SqueezeNet(nn.Module):
    def __init__(self, version: str = "1.1", num_classes: int = 600, frames: int = 16, size: int = 112) -> None:
        super().__init__()
        pool = lambda: nn.MaxPool3d(kernel_size=3, stride=2, padding=1)  # noqa: E731
        if version == "1.1":
            self.features = nn.Sequential(
                nn.Conv3d(3, 64, kernel_size=3, stride=(1, 2, 2), padding=1), nn.BatchNorm3d(64), nn.ReLU(),
                pool(), Fire(64, 16, 64, 64), Fire(128, 16, 64, 64, True),
                pool(), Fire(128, 32, 128, 128), Fire(256, 32, 128, 128, True),
                pool(), Fire(256, 48, 192, 192), Fire(384, 48, 192, 192, True),
                pool(), Fire(384, 64, 256, 256), Fire(512, 64, 256, 256, True))
        else:
            self.features = nn.Sequential(
                nn.Conv3d(3, 96, kernel_size=7, stride=(1, 2, 2), padding=3), nn.BatchNorm3d(96), nn.ReLU(),
                pool(), Fire(96, 16, 64, 64), Fire(128, 16, 64, 64, True),
                pool(), Fire(128, 32, 128, 128), Fire(256, 32, 128, 128, True),
                pool(), Fire(256, 48, 192, 192), Fire(384, 48, 192, 192, True), Fire(384, 64, 256, 256),
                pool(), Fire(512, 64, 256, 256, True))
        kt, ks = math.ceil(frames / 16), math.ceil(size / 32)
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv3d(512, num_classes, kernel_size=1), nn.ReLU(),
                                        nn.AvgPool3d((kt, ks, ks), stride=1))
        _init_(self)

    def forward(self, x):
        x = self.classifier(self.features(x))
        return x.view(x.size(0), -1)


# ----------------------------------------------------------------------------- ResNet / ResNeXt
def shortcut_a(x, planes: int, stride: int):
    out = F.avg_pool3d(x, kernel_size=1, stride=stride)
    zeros = torch.zeros(out.size(0), planes - out.size(1), out.size(2), out.size(3), out.size(4), dtype=out.dtype,
                        device=out.device)
    return torch.cat([out.data, zeros], dim=1)  # .data: no gradient along the shortcut


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        res = x if self.downsample is None else self.downsample(x)
        return self.relu(out + res)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None, cardinality: int = 0) -> None:
        super().__init__()
        mid = cardinality * int(planes / 32) if cardinality else planes
        out = planes * self.expansion
        self.conv1 = nn.Conv3d(inplanes, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(mid)
        self.conv2 = nn.Conv3d(mid, mid, 3, stride=stride, padding=1, groups=cardinality or 1, bias=False)
        self.bn2 = nn.BatchNorm3d(mid)
        self.conv3 = nn.Conv3d(mid, out, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(out)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        res = x if self.downsample is None else self.downsample(x)
        return self.relu(out + res)


class ResNeXtBottleneck(Bottleneck):
    expansion = 2


class _ShortcutA(nn.Module):
    def __init__(self, planes: int, stride: int) -> None:
        super().__init__()
        self.planes, self.stride = planes, stride

    def forward(self, x):
        return shortcut_a(x, self.planes, self.stride)


class ResNet(nn.Module):
    def __init__(self, block, layers: Sequence[int], shortcut: str = "A", num_classes: int = 600,
                 frames: int = 16, size: int = 112, cardinality: int = 0) -> None:
        super().__init__()
        self.inplanes = 64
        self.cardinality = cardinality
        self.conv1 = nn.Conv3d(3, 64, 7, stride=(1, 2, 2), padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool3d(3, stride=2, padding=1)
        widths = (128, 256, 512, 1024) if cardinality else (64, 128, 256, 512)
        self.layer1 = self._make_layer(block, widths[0], layers[0], shortcut, 1)
        self.layer2 = self._make_layer(block, widths[1], layers[1], shortcut, 2)
        self.layer3 = self._make_layer(block, widths[2], layers[2], shortcut, 2)
        self.layer4 = self._make_layer(block, widths[3], layers[3], shortcut, 2)
        self.avgpool = nn.AvgPool3d((math.ceil(frames / 16), math.ceil(size / 32), math.ceil(size / 32)), stride=1)
        fc_in = cardinality * 32 * block.expansion if cardinality else 512 * block.expansion
        self.fc = nn.Linear(fc_in, num_classes)
        _init_(self)

    def _make_layer(self, block, planes: int, blocks: int, shortcut: str, stride: int) -> nn.Sequential:
        downsample = None
        out = planes * block.expansion
        if stride != 1 or self.inplanes != out:
            if shortcut == "A":
                downsample = _ShortcutA(out, stride)
            else:
                downsample = nn.Sequential(nn.Conv3d(self.inplanes, out, 1, stride=stride, bias=False),
                                           nn.BatchNorm3d(out))
        extra = {"cardinality": self.cardinality} if self.cardinality else {}
        layers = [block(self.inplanes, planes, stride, downsample, **extra)]
        self.inplanes = out
        layers += [block(out, planes, **extra) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x)
        return self.fc(x.view(x.size(0), -1))


def squeezenet(version: str = "1.1", **kw) -> SqueezeNet:
    return SqueezeNet(version, **kw)


def resnet(depth: int = 18, shortcut: str = "A", **kw) -> ResNet:
    block = BasicBlock if depth in (10, 18, 34) else Bottleneck
    return ResNet(block, BLOCKS[depth], shortcut, **kw)


def resnext(depth: int = 101, cardinality: int = 32, shortcut: str = "B", **kw) -> ResNet:
    return ResNet(ResNeXtBottleneck, BLOCKS[depth], shortcut, cardinality=cardinality, **kw)


# ----------------------------------------------------------------------------- test utilities
def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0, *, small_bn: Optional[Callable[[str], bool]] = None,
               small_scale: float = 0.3) -> nn.Module:
    """Redraw every weight and BN statistic, so nothing is at identity. The BNs ``small_bn(name)``
    picks (default: a ResNet block's last, ``bn2``/``bn3``) get gammas scaled by ``small_scale``, so
    residual sums stay O(1). One draw order for every reference network (X3D's too)."""
    g = torch.Generator().manual_seed(seed)
    if small_bn is None:
        def small_bn(name: str) -> bool:
            return name.endswith(("bn2", "bn3")) and not name.startswith("bn")
    for name, m in model.named_modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):  # 2-D: MoViNet's (2+1)D port layers
            c = m.num_features
            scale = small_scale if small_bn(name) else 1.0
            m.weight.copy_(scale * (0.5 + torch.rand(c, generator=g)))
            m.bias.copy_(0.3 * torch.randn(c, generator=g))
            m.running_mean.copy_(0.3 * torch.randn(c, generator=g))
            m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=g))
            m.num_batches_tracked.fill_(777)
        elif isinstance(m, (nn.Conv2d, nn.Conv3d, nn.Linear)):
            fan_in = m.weight[0].numel()
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            if m.bias is not None:
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
    return model


@torch.no_grad()
def count_flops(model: nn.Module, shape: Sequence[int]) -> int:
    """Conv/linear multiply-adds + 2 per BN output element of one clip ``shape`` (C, T, H, W)
    (a model built under ``torch.device("meta")`` runs on shapes only)."""
    total = [0]

    def conv_hook(m, inp, out):
        total[0] += out.numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size)

    def linear_hook(m, inp, out):
        total[0] += out.numel() * m.in_features

    def bn_hook(m, inp, out):
        total[0] += 2 * out.numel()

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, nn.BatchNorm3d):
            hooks.append(m.register_forward_hook(bn_hook))
    device = next(model.parameters()).device
    model.eval()(torch.zeros((1,) + tuple(shape), device=device))
    for h in hooks:
        h.remove()
    return total[0]


def numpy_state(model: nn.Module) -> Dict[str, object]:
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
