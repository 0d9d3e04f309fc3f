"""MobileNet V1 and V2 — notes section "MobileNet" (MobileNetV1: DW卷积 + PW卷积, 参数计算; MobileNetV2: 倒残差, Linear bottleneck).

V1 replaces each 3×3 conv by a depthwise 3×3 (one-channel kernels, groups = channels) and a pointwise 1×1, with α and ρ;
V2 expands with 1×1 (×t), filters depthwise, projects back linearly, and adds the input only when stride 1 and shapes match.
Two ablation switches, off by default, exist for compare.py: `MobileNetV1(separable=False)` (the V1 paper's Table 4
"Conv MobileNet": the same layout with standard 3×3 convs) and `MobileNetV2(linear_bottleneck=False)` (a ReLU6 after the
projection, the V2 paper's Figure 6a ablation).
"""
from __future__ import annotations


import torch
from torch import nn

MODELS = ("mobilenet_v1", "mobilenet_v2")


class ConvBNReLU(nn.Sequential):
    """Conv → BN → ReLU(6), named as in the notes' printout; `groups=channels` makes it a DW conv (卷积核channel为1)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, groups: int = 1,
                 activation: type[nn.Module] = nn.ReLU6) -> None:
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
            activation(inplace=True),
        )


def _make_divisible(v: float, divisor: int = 8) -> int:
    """Round channels to a multiple of `divisor`, never dropping more than 10% (the V2 paper's and torchvision's rule)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


# ---------------------------------------------------------------------------------------------------------------- V1
# (output channels, stride) of the 13 depthwise-separable blocks, MobileNet paper Table 1.
V1_SETTING = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
              (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]


class MobileNetV1(nn.Module):
    """Full 3×3 conv stem, then 13 × (DW 3×3 → PW 1×1), global average pool, FC. ReLU as in the paper.

    `width_mult` is α: every layer's channels become int(α·c) (at least 8), so cost falls roughly as α².
    The resolution multiplier ρ is simply the input size (`--image-size`); cost falls as ρ².
    `separable=False` makes each block one standard 3×3 conv (same channels and strides): the baseline the paper's
    Table 4 compares against, about 8-9× the mult-adds (ratio 1/N + 1/K² per layer), to measure what separability costs
    in accuracy.
    """

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2,
                 separable: bool = True) -> None:
        super().__init__()
        ch = lambda c: max(8, int(c * width_mult))  # noqa: E731
        in_ch = ch(32)
        layers: list[nn.Module] = [ConvBNReLU(3, in_ch, 3, stride=2, activation=nn.ReLU)]
        for out_c, stride in V1_SETTING:
            out_ch = ch(out_c)
            layers.append(nn.Sequential(
                ConvBNReLU(in_ch, in_ch, 3, stride, groups=in_ch, activation=nn.ReLU),  # depthwise
                ConvBNReLU(in_ch, out_ch, 1, activation=nn.ReLU),                      # pointwise
            ) if separable else nn.Sequential(ConvBNReLU(in_ch, out_ch, 3, stride, activation=nn.ReLU)))
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_ch, num_classes))
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


# ---------------------------------------------------------------------------------------------------------------- V2
class InvertedResidual(nn.Module):
    """倒残差: 1×1 expand (×t) → 3×3 depthwise → 1×1 linear projection (no activation: ReLU destroys low-dim features).

    shortcut连接条件: stride = 1 and input shape == output shape (channels included).
    `linear_bottleneck=False` appends a ReLU6 after the projection's BN (before the shortcut add): the ablation that
    tests the notes' "relu函数对低维数据损失大".
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: int, linear_bottleneck: bool = True) -> None:
        super().__init__()
        hidden = int(round(in_ch * expand_ratio))
        self.use_shortcut = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = [ConvBNReLU(in_ch, hidden, 1)] if expand_ratio != 1 else []
        layers += [
            ConvBNReLU(hidden, hidden, 3, stride, groups=hidden),  # groups=输入输出通道意味着是dw卷积
            nn.Conv2d(hidden, out_ch, 1, bias=False),              # linear bottleneck: BN but no ReLU
            nn.BatchNorm2d(out_ch),
            *([] if linear_bottleneck else [nn.ReLU6(inplace=True)]),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_shortcut else self.conv(x)


# t (expansion), c (channels), n (repeats), s (stride of the first repeat) — MobileNetV2 paper Table 2.
V2_SETTING = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


class MobileNetV2(nn.Module):
    """Module names and shapes of torchvision.models.mobilenet_v2, so its ImageNet weights load with strict=True.
    `linear_bottleneck=False` (ReLU6 after every projection, see InvertedResidual) adds no parameters, so the weights
    still load."""

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2,
                 linear_bottleneck: bool = True) -> None:
        super().__init__()
        in_ch = _make_divisible(32 * width_mult)
        last_ch = _make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [ConvBNReLU(3, in_ch, 3, stride=2)]
        for t, c, n, s in V2_SETTING:
            out_ch = _make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(in_ch, out_ch, s if i == 0 else 1, t, linear_bottleneck))
                in_ch = out_ch
        layers.append(ConvBNReLU(in_ch, last_ch, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last_ch, num_classes))
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


def _init_weights(model: nn.Module) -> None:
    """torchvision's MobileNet initialisation (Kaiming fan-out convs, unit BN, small normal FC). No conv here has a
    bias (BN follows each), so torchvision's zeroing of conv biases has nothing to do."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def build_model(name: str, num_classes: int, **kwargs) -> nn.Module:
    """`mobilenet_v1` / `mobilenet_v2`; kwargs: `width_mult` (α), `dropout`, and V1's `separable` or V2's
    `linear_bottleneck` (the ablations; a model's constructor rejects the other's)."""
    if name == "mobilenet_v1":
        return MobileNetV1(num_classes, **kwargs)
    if name == "mobilenet_v2":
        return MobileNetV2(num_classes, **kwargs)
    raise ValueError(f"unknown model {name!r}; choose from {MODELS}")


# ---------------------------------------------------------------------------------------------------------- 参数计算
def separable_cost(in_channels: int, out_channels: int, kernel_size: int = 3, feature_size: int = 112) -> dict:
    """参数计算: a standard K×K conv (M→N channels) vs DW K×K + PW 1×1 on a D_F×D_F map (stride 1, same padding).

    standard:  params K²·M·N,       mult-adds K²·M·N·D_F²
    DW + PW:   params K²·M + M·N,   mult-adds (K²·M + M·N)·D_F²
    ratio (DW+PW / standard) = 1/N + 1/K² for both — about 8-9× cheaper for 3×3 kernels.
    """
    k2, m, n, f2 = kernel_size ** 2, in_channels, out_channels, feature_size ** 2
    standard_params, separable_params = k2 * m * n, k2 * m + m * n
    return {
        "standard_params": standard_params,
        "separable_params": separable_params,
        "standard_macs": standard_params * f2,
        "separable_macs": separable_params * f2,
        "ratio": separable_params / standard_params,
        "ratio_formula": 1 / n + 1 / k2,
    }


if __name__ == "__main__":  # python 05_mobilenet/model.py: the notes' printout and 参数计算 for a few layers
    print(build_model("mobilenet_v2", 1000).features[3])
    print("M -> N, K, D_F | standard params / mult-adds | DW+PW params / mult-adds | ratio = 1/N + 1/K^2")
    for m, n, k, f in ((32, 64, 3, 112), (128, 128, 3, 56), (512, 512, 3, 14), (1024, 1024, 3, 7)):
        c = separable_cost(m, n, k, f)
        print(f"{m} -> {n}, {k}, {f} | {c['standard_params']:,} / {c['standard_macs']:,} | "
              f"{c['separable_params']:,} / {c['separable_macs']:,} | {c['ratio']:.4f} = {c['ratio_formula']:.4f}")
