"""FCN (全卷积网络) on VGG16: fc6/fc7 become 7×7 and 1×1 convolutions, so any input size works; transposed convs upsample.

跳级结构: FCN-32s upsamples the stride-32 scores alone; FCN-16s adds (相加) pool4's scores, FCN-8s also pool3's.
"""
from __future__ import annotations

import torch
import torch.nn as nn

MODELS = ("fcn32s", "fcn16s", "fcn8s")
SKIPS = {"fcn32s": 0, "fcn16s": 1, "fcn8s": 2}
# VGG16 configuration D: conv widths, "M" = 2×2 max-pool. Its features[] indices match torchvision's vgg16.features.
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
# "vgg16": torchvision's layout and widths (ImageNet weights load); "light": same 13 convs / 5 pools at 1/8 width with
# BatchNorm and 512-channel fc6/fc7, trained from scratch (the synthetic CPU run).
BACKBONES = {"vgg16": {"width_div": 1, "batch_norm": False, "fc_channels": 4096},
             "light": {"width_div": 8, "batch_norm": True, "fc_channels": 512}}


def vgg_features(width_div: int = 1, batch_norm: bool = False) -> nn.Sequential:
    """VGG16's conv/pool stack (pool1 … pool5, stride 32); conv 3×3 padding 1 keeps size, each pool halves (floor)."""
    layers: list[nn.Module] = []
    in_channels = 3
    for v in VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2))  # stride = kernel size by default (the notes: 池化步长默认为卷积核尺寸)
            continue
        out_channels = v // width_div
        layers.append(nn.Conv2d(in_channels, out_channels, 3, padding=1))
        layers += [nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)] if batch_norm else [nn.ReLU(inplace=True)]
        in_channels = out_channels
    return nn.Sequential(*layers)


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """ConvTranspose2d weight (channels, channels, k, k) that upsamples each channel bilinearly (FCN's initialisation)."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    taps = 1 - (torch.arange(kernel_size, dtype=torch.float32) - center).abs() / factor
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = taps[:, None] * taps[None, :]
    return weight


def upsample(channels: int, factor: int) -> nn.ConvTranspose2d:
    """A learnable ×factor transposed conv (kernel 2f, stride f, padding f/2: output exactly f·n), bilinear at start."""
    layer = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(bilinear_kernel(channels, 2 * factor))
    return layer


def score(in_channels: int, num_classes: int) -> nn.Conv2d:
    """1×1 class-score layer, zero-initialised as in the FCN paper: a new skip starts as a no-op on the coarser net."""
    layer = nn.Conv2d(in_channels, num_classes, 1)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class FCN(nn.Module):
    """FCN-32s/16s/8s. The input is padded (bottom/right, zeros) to a multiple of 32 so every stage halves exactly and
    the skips line up; the output is cropped back to H×W. (Caffe's FCN pads conv1_1 by 100 and crops with offsets
    instead; fc6 here has padding 3, so a 224×224 image's centre fc7 position sees exactly the 7×7 pool5 map.)
    """

    def __init__(self, num_classes: int, skips: int = 0, backbone: str = "vgg16") -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; choose from {tuple(BACKBONES)}")
        cfg = BACKBONES[backbone]
        self.skips = skips
        self.features = vgg_features(cfg["width_div"], cfg["batch_norm"])
        pools = [i for i, layer in enumerate(self.features) if isinstance(layer, nn.MaxPool2d)]
        self.pool3_end, self.pool4_end = pools[2] + 1, pools[3] + 1
        c3, c4, c5, fc = 256 // cfg["width_div"], 512 // cfg["width_div"], 512 // cfg["width_div"], cfg["fc_channels"]
        self.fc = nn.Sequential(  # fc6 and fc7 of VGG16, convolutionalized
            nn.Conv2d(c5, fc, 7, padding=3), nn.ReLU(inplace=True), nn.Dropout(),
            nn.Conv2d(fc, fc, 1), nn.ReLU(inplace=True), nn.Dropout(),
        )
        self.score_fr = score(fc, num_classes)
        if skips >= 1:
            self.upscore2 = upsample(num_classes, 2)
            self.score_pool4 = score(c4, num_classes)
        if skips >= 2:
            self.upscore_pool4 = upsample(num_classes, 2)
            self.score_pool3 = score(c3, num_classes)
        self.upscore = upsample(num_classes, 32 // 2 ** skips)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = nn.functional.pad(x, (0, -w % 32, 0, -h % 32))
        pool3 = self.features[:self.pool3_end](x)
        pool4 = self.features[self.pool3_end:self.pool4_end](pool3)
        scores = self.score_fr(self.fc(self.features[self.pool4_end:](pool4)))  # stride 32
        if self.skips >= 1:
            scores = self.upscore2(scores) + self.score_pool4(pool4)  # stride 16
        if self.skips >= 2:
            scores = self.upscore_pool4(scores) + self.score_pool3(pool3)  # stride 8
        return self.upscore(scores)[..., :h, :w]


def convolutionalize(vgg_state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a torchvision vgg16 state_dict onto FCN keys: features unchanged, classifier.0/3 Linear → fc.0/fc.3 convs.

    fc6 Linear(512·7·7 → 4096) flattens pool5 as (C, H, W), so its weight reshapes to a (4096, 512, 7, 7) kernel;
    fc7 Linear(4096 → 4096) is a 1×1 conv. classifier.6 (the 1000 ImageNet classes) has no counterpart and is dropped.
    """
    out = {k: v for k, v in vgg_state_dict.items() if k.startswith("features.")}
    fc6, fc7 = vgg_state_dict["classifier.0.weight"], vgg_state_dict["classifier.3.weight"]
    out["fc.0.weight"] = fc6.reshape(fc6.shape[0], -1, 7, 7)
    out["fc.0.bias"] = vgg_state_dict["classifier.0.bias"]
    out["fc.3.weight"] = fc7.reshape(*fc7.shape, 1, 1)
    out["fc.3.bias"] = vgg_state_dict["classifier.3.bias"]
    return out


def backbone_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The backbone part (`features.*`, `fc.*`) of a VGG16 classifier's state_dict (convolutionalized) or of an FCN
    checkpoint's; score and upsampling layers are left out, since a backbone knows no classes."""
    if "classifier.0.weight" in state and "classifier.3.weight" in state and state["classifier.0.weight"].dim() == 2 \
            and state["classifier.0.weight"].shape[1] % 49 == 0:
        state = convolutionalize(state)
    return {k: v for k, v in state.items() if k.startswith(("features.", "fc."))}


def build_model(name: str, num_classes: int, **kwargs) -> nn.Module:
    """`name` in MODELS; kwargs: `backbone` ("vgg16" or "light")."""
    if name not in SKIPS:
        raise ValueError(f"unknown model {name!r}; choose from {MODELS}")
    return FCN(num_classes, skips=SKIPS[name], **kwargs)
