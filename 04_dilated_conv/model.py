"""膨胀卷积 (dilated convolution): a small segmentation net that grows its receptive field without shrinking the map.

Three variants with the same parameters: `hdc` (rates 1, 2, 5: no gridding), `gridding` (2, 2, 2: holes) and `downsample`
(stride-2 convs instead of dilation: the "下采样增大感受野, 但损失信息" baseline the notes start from).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# Per variant: (dilation, stride) of each 3×3 conv in the body, one tuple per group; every group has the same convs, so
# the parameter count is identical and only the sampling pattern differs.
VARIANTS: dict[str, tuple[tuple[int, int], ...]] = {
    "hdc": ((1, 1), (2, 1), (5, 1)),
    "gridding": ((2, 1), (2, 1), (2, 1)),
    "downsample": ((1, 2), (1, 1), (1, 1)),
}
MODELS = tuple(VARIANTS)


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """3×3 conv whose padding equals its dilation: with stride 1 the map keeps its size (P = (F − 1) / 2)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class DilatedSegNet(nn.Module):
    """Stem to stride 4, `groups` repetitions of the variant's three convs, a 1×1 classifier, bilinear upsampling.

    The dilated variants stay at stride 4 through the body; `downsample` halves the map at the start of every group
    (stride 4 · 2^groups), reaching a comparable receptive field by throwing resolution away.
    """

    def __init__(self, num_classes: int, variant: str = "hdc", width: int = 32, groups: int = 2) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose from {MODELS}")
        self.variant = variant
        self.stem = nn.Sequential(conv_bn_relu(3, width // 2, stride=2), conv_bn_relu(width // 2, width, stride=2))
        self.body = nn.Sequential(*[
            conv_bn_relu(width, width, stride=stride, dilation=dilation)
            for _ in range(groups) for dilation, stride in VARIANTS[variant]
        ])
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        x = self.classifier(self.body(self.stem(x)))
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def build_model(name: str, num_classes: int, **kwargs) -> nn.Module:
    """`name` is one of MODELS; kwargs (`width`, `groups`) are plain values so a checkpoint can rebuild the net."""
    if name not in VARIANTS:
        raise ValueError(f"unknown model {name!r}; choose from {MODELS}")
    return DilatedSegNet(num_classes, variant=name, **kwargs)
