"""DeepLab V1, V2, V3 and V3+ (notes: Deeplab, 膨胀卷积).

Keep resolution by turning the last strides into dilation (DilatedFCN after block3), then widen the field of view with
atrous convs: V1 a LargeFOV head, V2 ASPP of 4 summed classifiers, V3 ASPP + image pooling + BN, V3+ a stride-4 decoder.

The backbone is a torchvision model kept under its own parameter names (`model.backbone`), so ImageNet weights load
into it by name and shape; only strides, paddings and dilations change, never a weight shape. Light backbones: resnet18,
and "light" (ResNet-18's layout at 1/4 width, no ImageNet weights) for runs from scratch on the synthetic data.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

MODELS = ("deeplabv1", "deeplabv2", "deeplabv3", "deeplabv3plus")
BACKBONES = ("vgg16", "resnet18", "resnet50", "resnet101", "light")
# version: (backbone, output stride) as published (V3+ used Xception; ResNet-101 is its reported alternative)
DEFAULTS = {"deeplabv1": ("vgg16", 8), "deeplabv2": ("resnet101", 8),
            "deeplabv3": ("resnet101", 16), "deeplabv3plus": ("resnet101", 16)}
# Atrous rates of each head, published for one output stride; at the other stride they scale to keep the field of view.
HEAD_RATES = {"deeplabv1": ((12,), 8), "deeplabv2": ((6, 12, 18, 24), 8),
              "deeplabv3": ((6, 12, 18), 16), "deeplabv3plus": ((6, 12, 18), 16)}


def make_backbone(name: str) -> tuple[nn.Module, tuple[tuple[str, ...], ...], tuple[int, int, int]]:
    """A torchvision trunk without its classifier, its 4 stages (submodule names) and channels (stride 4, 16, last).

    Stage k starts with the downsampling that takes it to stride 4·2^k, so dilating a stage means: drop that stride and
    dilate every 3×3 after it. VGG16: conv1_1..conv3_3 | pool3 conv4 | pool4 conv5 | pool5.
    ResNet: stem + layer1 | layer2 | layer3 | layer4.
    """
    if name == "vgg16":
        with torch.device("meta"):  # skip initialising the 124M-parameter classifier that is deleted right away
            net = torchvision.models.vgg16()
        del net.avgpool, net.classifier
        net.to_empty(device="cpu")
        for m in net.features:  # torchvision's VGG initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        cuts = (0, 16, 23, 30, 31)
        stages = tuple(tuple(f"features.{i}" for i in range(a, b)) for a, b in zip(cuts, cuts[1:]))
        return net, stages, (256, 512, 512)
    stages = (("conv1", "bn1", "relu", "maxpool", "layer1"), ("layer2",), ("layer3",), ("layer4",))
    if name in ("resnet18", "resnet50", "resnet101"):
        net = getattr(torchvision.models, name)()
        del net.avgpool, net.fc
        e = net.layer1[0].expansion
        return net, stages, (64 * e, 256 * e, 512 * e)
    if name == "light":
        return light_resnet(), stages, (16, 64, 128)
    raise ValueError(f"unknown backbone {name!r}; choose from {BACKBONES}")


def light_resnet(widths: Sequence[int] = (16, 32, 64, 128)) -> nn.Module:
    """ResNet-18's layout (7×7 stem, max pool, 4 stages of 2 torchvision BasicBlocks) at 1/4 width, with ResNet's
    submodule names, so dilation and the heads treat it like resnet18: the CPU-sized backbone of the experiments."""
    block = torchvision.models.resnet.BasicBlock

    def stage(cin: int, cout: int, stride: int) -> nn.Sequential:
        down = None if stride == 1 and cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                                                       nn.BatchNorm2d(cout))
        return nn.Sequential(block(cin, cout, stride, down), block(cout, cout))

    net = nn.Module()
    net.conv1, net.bn1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False), nn.BatchNorm2d(widths[0])
    net.relu, net.maxpool = nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
    for i, (cin, cout) in enumerate(zip((widths[0], *widths[:-1]), widths)):
        setattr(net, f"layer{i + 1}", stage(cin, cout, 1 if i == 0 else 2))
    return net


def dilate_(units: Sequence[nn.Module], rates: Sequence[int]) -> None:
    """膨胀卷积 instead of downsampling: strides become 1, 3×3 convs get dilation r and padding r (size kept, since
    the dilated kernel spans r(k−1)+1 = 2r+1). Unit i (a ResNet block or a VGG layer) gets rates[i], the last rate
    repeating; max pools become 3×3 stride 1 (DeepLab's pool4/pool5)."""
    for i, unit in enumerate(units):
        r = rates[min(i, len(rates) - 1)]
        for m in unit.modules():
            if isinstance(m, nn.Conv2d):
                m.stride = (1, 1)
                if m.kernel_size[0] > 1:
                    m.dilation, m.padding = (r, r), (r * (m.kernel_size[0] - 1) // 2,) * 2
            elif isinstance(m, nn.MaxPool2d):
                m.kernel_size, m.stride, m.padding = 3, 1, 1


def conv_bn_relu(cin: int, cout: int, k: int = 1, rate: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=rate * (k - 1) // 2, dilation=rate, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class LargeFOV(nn.Sequential):
    """V1's head: fc6 as a 3×3 conv, dilation 12, 1024 channels (instead of VGG's 7×7×4096), fc7 1×1, fc8 scores."""

    def __init__(self, cin: int, num_classes: int, rate: int, width: int = 1024) -> None:
        super().__init__(nn.Conv2d(cin, width, 3, padding=rate, dilation=rate), nn.ReLU(inplace=True), nn.Dropout(0.5),
                         nn.Conv2d(width, width, 1), nn.ReLU(inplace=True), nn.Dropout(0.5),
                         nn.Conv2d(width, num_classes, 1))


class ASPPSum(nn.Module):
    """V2's ASPP: parallel 3×3 classifiers at rates 6/12/18/24 on the same features; their class scores are summed."""

    def __init__(self, cin: int, num_classes: int, rates: Sequence[int]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(cin, num_classes, 3, padding=r, dilation=r) for r in rates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([b(x) for b in self.branches]).sum(0)


class ImagePooling(nn.Sequential):
    """V3's image-level feature: global average pool, 1×1 conv + BN, broadcast back to the map size."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), *conv_bn_relu(cin, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            raise ValueError("DeepLab V3/V3+ image pooling: BatchNorm over a 1×1 pooled map needs a batch of at least "
                             "2 in training (got 1); use a larger batch size, or model.eval() for inference")
        return F.interpolate(super().forward(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """V3's ASPP: a 1×1 branch, three 3×3 atrous branches and image pooling, all with BN, concatenated, 1×1 to 256."""

    def __init__(self, cin: int, rates: Sequence[int], cout: int = 256) -> None:
        super().__init__()
        self.branches = nn.ModuleList([conv_bn_relu(cin, cout), *(conv_bn_relu(cin, cout, 3, r) for r in rates),
                                       ImagePooling(cin, cout)])
        self.project = nn.Sequential(*conv_bn_relu(cout * len(self.branches), cout), nn.Dropout(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([b(x) for b in self.branches], dim=1))


class Decoder(nn.Module):
    """V3+: stride-4 low-level features reduced 1×1 to 48 channels (so the 256 encoder channels are not drowned out),
    concatenated with the 4× bilinearly upsampled ASPP output, fused by two 3×3 convs (256) and classified."""

    def __init__(self, low_channels: int, num_classes: int, width: int = 256, low: int = 48) -> None:
        super().__init__()
        self.reduce = conv_bn_relu(low_channels, low)
        self.fuse = nn.Sequential(conv_bn_relu(width + low, width, 3), conv_bn_relu(width, width, 3))
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        low = self.reduce(low)
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(self.fuse(torch.cat([x, low], dim=1)))


class DeepLab(nn.Module):
    def __init__(self, version: str, num_classes: int, backbone: str | None = None, output_stride: int | None = None,
                 multi_grid: Sequence[int] | None = None, aux: bool = False,
                 atrous_rates: Sequence[int] | None = None) -> None:
        super().__init__()
        if version not in MODELS:
            raise ValueError(f"unknown model {version!r}; choose from {MODELS}")
        backbone, output_stride = backbone or DEFAULTS[version][0], output_stride or DEFAULTS[version][1]
        if output_stride not in (8, 16):
            raise ValueError(f"output_stride must be 8 or 16, got {output_stride}")
        is_v3 = version in ("deeplabv3", "deeplabv3plus")
        if multi_grid is not None and not is_v3:
            raise ValueError("multi-grid is a DeepLab V3 idea; V1/V2 dilate every unit of a stage with the same rate")
        multi_grid = tuple(multi_grid or ((1, 2, 4) if is_v3 else (1,)))
        self.version, self.backbone_name = version, backbone
        self.output_stride, self.multi_grid = output_stride, multi_grid
        self.backbone, self.stages, (low_ch, mid_ch, out_ch) = make_backbone(backbone)
        # Output stride 16: stage 4 (block4) keeps stride 16 with rate 2; stride 8: stage 3 rate 2 and stage 4 rate 4.
        # Multi-grid (V3): the last stage's units get rate·(1, 2, 4); ResNet-18's 2-block stage takes the first two.
        stage_rates = {3: [2 * g for g in multi_grid]} if output_stride == 16 else \
            {2: [2], 3: [4 * g for g in multi_grid]}
        for k, rates in stage_rates.items():
            modules = [self.backbone.get_submodule(n) for n in self.stages[k]]
            dilate_([u for m in modules for u in (m.children() if isinstance(m, nn.Sequential) else [m])], rates)
        base_rates, base_stride = HEAD_RATES[version]
        # `atrous_rates` replaces the published rates, e.g. scaled down for small images whose feature map is smaller
        # than the rates (a rate ≥ the map's side makes a 3×3 atrous conv see only its centre tap: a 1×1 conv).
        if atrous_rates is not None and len(atrous_rates) != len(base_rates):
            raise ValueError(f"{version} has {len(base_rates)} atrous rate(s), got {list(atrous_rates)}")
        self.rates = tuple(atrous_rates) if atrous_rates is not None else \
            tuple(r * base_stride // output_stride for r in base_rates)
        div = 4 if backbone == "light" else 1  # the light backbone's heads at 1/4 width too (1024 → 256, 256 → 64)
        if version == "deeplabv1":
            self.head = LargeFOV(out_ch, num_classes, self.rates[0], width=1024 // div)
        elif version == "deeplabv2":
            self.head = ASPPSum(out_ch, num_classes, self.rates)
        elif version == "deeplabv3":
            self.head = nn.Sequential(ASPP(out_ch, self.rates, 256 // div), nn.Conv2d(256 // div, num_classes, 1))
        else:
            self.head = ASPP(out_ch, self.rates, 256 // div)
        self.decoder = Decoder(low_ch, num_classes, 256 // div, 48 // div) if version == "deeplabv3plus" else None
        # Optional auxiliary FCN head on the stride-16 stage (torchvision's recipe; not in the DeepLab papers).
        self.aux = nn.Sequential(conv_bn_relu(mid_ch, mid_ch // 4, 3), nn.Dropout(0.1),
                                 nn.Conv2d(mid_ch // 4, num_classes, 1)) if aux else None

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        size = x.shape[-2:]
        features = []
        for stage in self.stages:
            for name in stage:
                x = self.backbone.get_submodule(name)(x)
            features.append(x)
        out = self.head(features[-1])
        if self.decoder is not None:
            out = self.decoder(out, features[0])
        out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
        if self.aux is not None and self.training:
            return out, F.interpolate(self.aux(features[2]), size=size, mode="bilinear", align_corners=False)
        return out


def build_model(name: str, num_classes: int, **kwargs) -> DeepLab:
    """`name` in MODELS; kwargs: backbone (BACKBONES), output_stride (8/16), multi_grid (V3/V3+), aux (bool),
    atrous_rates (the head's rates instead of the published ones)."""
    return DeepLab(name, num_classes, **kwargs)
