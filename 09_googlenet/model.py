"""GoogLeNet (Inception v1) — notes section "GoogleNet" (inception结构, 1x1降维, 两个辅助分类器, 平均池化 + dropout).

Inception runs 1×1, 1×1→3×3, 1×1→5×5 and 3×3 max-pool→1×1 branches side by side and concatenates them (不同尺度的感知);
two auxiliary classifiers (after 4a and 4d) push gradient into the middle of the net during training only.
`batch_norm=False` is the paper's own net (2014, before BatchNorm): conv + bias + ReLU, no normalisation, so the
vanishing gradient the notes give as the aux heads' first reason (一是为了避免梯度消失) can be measured (compare.py).
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

MODELS = ("googlenet",)

# in, #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj — GoogLeNet paper Table 1.
INCEPTION = {
    "3a": (192, 64, 96, 128, 16, 32, 32), "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64), "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64), "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128),
    "5a": (832, 256, 160, 320, 32, 128, 128), "5b": (832, 384, 192, 384, 48, 128, 128),
}


class BasicConv2d(nn.Module):
    """Conv → BN → ReLU (BN replaces the paper's LRN; same layout and names as torchvision). `batch_norm=False`:
    conv with bias → ReLU, as in the paper (`bn` is then an identity, so the parameter names stay the same)."""

    def __init__(self, in_ch: int, out_ch: int, batch_norm: bool = True, **kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, bias=not batch_norm, **kwargs)
        self.bn = nn.BatchNorm2d(out_ch, eps=0.001) if batch_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    """Four branches concatenated on channels; the 1×1 convs before 3×3/5×5 and after the pool are 降维 (reductions).

    `branch3_kernel` is 5 in the paper; torchvision's ported weights use 3 there (pytorch/vision#906).
    """

    def __init__(self, in_ch: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int, pool_proj: int,
                 branch3_kernel: int = 5, batch_norm: bool = True) -> None:
        super().__init__()
        conv = functools.partial(BasicConv2d, batch_norm=batch_norm)
        self.branch1 = conv(in_ch, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(conv(in_ch, ch3x3red, kernel_size=1), conv(ch3x3red, ch3x3, kernel_size=3, padding=1))
        k = branch3_kernel
        self.branch3 = nn.Sequential(conv(in_ch, ch5x5red, kernel_size=1),
                                     conv(ch5x5red, ch5x5, kernel_size=k, padding=k // 2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     conv(in_ch, pool_proj, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """辅助分类器: avg-pool to 4×4 → 1×1 conv (128) → FC 1024 → dropout 0.7 → FC. Adaptive pooling (5×5/3 at 14×14 in the
    paper) keeps it working at any input size."""

    def __init__(self, in_ch: int, num_classes: int, dropout: float = 0.7, batch_norm: bool = True) -> None:
        super().__init__()
        self.conv = BasicConv2d(in_ch, 128, batch_norm, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv(F.adaptive_avg_pool2d(x, (4, 4))), 1)
        return self.fc2(self.dropout(F.relu(self.fc1(x), inplace=True)))


class GoogLeNet(nn.Module):
    """Stem → 3a 3b → pool → 4a..4e → pool → 5a 5b → global average pool → dropout → one FC (no big FC layers).

    Train mode with `aux_logits` returns (logits, aux1, aux2); eval mode returns logits only. `torchvision_compat=True`
    gives torchvision.models.googlenet's exact state_dict; `transform_input=True` is what its ImageNet weights expect.

    `batch_norm=False` builds the paper's net without BatchNorm (Szegedy et al. 2014 predates it; the notes' reason for
    the aux heads, 避免梯度消失, is about such a net), initialised as the paper's reference Caffe model bvlc_googlenet:
    "xavier" weights, i.e. uniform ±sqrt(3 / fan_in), and conv biases 0.2. The BN net's std-0.01 init, with no BN
    to renormalise, shrinks the signal layer by layer: at 96 px its logits are ~1e-12 and conv1's gradient ~1e-7.
    """

    def __init__(self, num_classes: int = 1000, aux_logits: bool = True, torchvision_compat: bool = False,
                 transform_input: bool = False, dropout: float | None = None, dropout_aux: float = 0.7,
                 batch_norm: bool = True) -> None:
        super().__init__()
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        if dropout is None:
            dropout = 0.2 if torchvision_compat else 0.4  # paper: 40% dropout before the classifier
        block = functools.partial(Inception, branch3_kernel=3 if torchvision_compat else 5, batch_norm=batch_norm)
        self.conv1 = BasicConv2d(3, 64, batch_norm, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, batch_norm, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, batch_norm, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = block(*INCEPTION["3a"])
        self.inception3b = block(*INCEPTION["3b"])
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = block(*INCEPTION["4a"])
        self.inception4b = block(*INCEPTION["4b"])
        self.inception4c = block(*INCEPTION["4c"])
        self.inception4d = block(*INCEPTION["4d"])
        self.inception4e = block(*INCEPTION["4e"])
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = block(*INCEPTION["5a"])
        self.inception5b = block(*INCEPTION["5b"])
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, dropout_aux, batch_norm)
            self.aux2 = InceptionAux(528, num_classes, dropout_aux, batch_norm)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and not batch_norm:
                nn.init.uniform_(m.weight, -math.sqrt(3 / m.weight[0].numel()), math.sqrt(3 / m.weight[0].numel()))
                nn.init.constant_(m.bias, 0.2 if isinstance(m, nn.Conv2d) else 0.0)
            elif isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _transform_input(self, x: torch.Tensor) -> torch.Tensor:
        """Map ImageNet-normalised input to the (x - 0.5) / 0.5 scaling the ported Caffe weights were trained with."""
        mean = x.new_tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = x.new_tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        return x * (std / 0.5) + (mean - 0.5) / 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.transform_input:
            x = self._transform_input(x)
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        with_aux = self.training and self.aux_logits
        aux1 = self.aux1(x) if with_aux else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if with_aux else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
        return (x, aux1, aux2) if with_aux else x


AUX_PREFIXES = ("aux1.", "aux2.")


def load_without_aux(model: GoogLeNet, state_dict: dict[str, torch.Tensor]) -> None:
    """Load `state_dict` strictly except for the auxiliary heads, which only matter in training: a checkpoint trained
    with aux heads into an aux-free model for prediction, or an aux-free file into a model with aux heads (they keep
    their initialisation). `model.load_state_dict(..., strict=True)` itself stays strict about every key."""
    result = model.load_state_dict({k: v for k, v in state_dict.items() if not k.startswith(AUX_PREFIXES)},
                                   strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(AUX_PREFIXES)]
    if missing or result.unexpected_keys:
        raise RuntimeError(f"Error(s) in loading state_dict for {type(model).__name__}: missing keys {missing}, "
                           f"unexpected keys {result.unexpected_keys}")


class GoogLeNetLoss(nn.Module):
    """loss = CE(main) + aux_weight·(CE(aux1) + CE(aux2)) in training (aux_weight 0.3, as in the paper); plain CE on the
    logits tensor that eval mode returns. `label_smoothing` (--label-smoothing) applies to every head."""

    def __init__(self, aux_weight: float = 0.3, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.aux_weight = aux_weight
        self.ce = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def forward(self, output: torch.Tensor | tuple, target: torch.Tensor) -> torch.Tensor:
        if isinstance(output, torch.Tensor):
            return self.ce(output, target)
        main, aux1, aux2 = output
        return self.ce(main, target) + self.aux_weight * (self.ce(aux1, target) + self.ce(aux2, target))


def build_model(name: str, num_classes: int, **kwargs) -> nn.Module:
    """`googlenet`; kwargs: `aux_logits`, `torchvision_compat`, `transform_input`, `dropout`, `dropout_aux`,
    `batch_norm`."""
    if name == "googlenet":
        return GoogLeNet(num_classes, **kwargs)
    raise ValueError(f"unknown model {name!r}; choose from {MODELS}")
