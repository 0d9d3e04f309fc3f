"""迁移学习 (notes section 迁移学习): reuse a trained model's parameters as the starting point for a new task.

Every model is split into a backbone (stages, input side first: what Transfer Learning freezes, what Extract Feature
Vector runs once, what Fine-tuning freezes in part) and a head (the classifier the new task replaces: 自己定制的全连接层).
The torchvision models keep torchvision's own parameter names, so torchvision weights, 05_mobilenet checkpoints and raw
state_dicts load by name; `tudui` is 03_cifar_train's network under its names, so 03's checkpoints load too.
"""
from __future__ import annotations

import torch
import torchvision
from torch import nn

MODELS = ("resnet18", "mobilenet_v2", "vgg16", "tudui")


def _prefixes(*blocks: str) -> tuple[str, ...]:
    return tuple(f"{b}." for b in blocks)


def _feature_blocks(*indices: range) -> tuple[tuple[str, ...], ...]:
    return tuple(_prefixes(*(f"features.{i}" for i in r)) for r in indices)


# Backbone stages as parameter-name prefixes, input side first (Fine-tuning freezes the first K: 靠近输入的卷积层 keep the
# low-level information). resnet18: stem + layer1-4; mobilenet_v2 and vgg16: `features` cut where the resolution halves.
STAGES: dict[str, tuple[tuple[str, ...], ...]] = {
    "resnet18": (_prefixes("conv1", "bn1"), *(_prefixes(f"layer{i}") for i in range(1, 5))),
    "mobilenet_v2": _feature_blocks(range(0, 2), range(2, 4), range(4, 7), range(7, 14), range(14, 19)),
    "vgg16": _feature_blocks(range(0, 5), range(5, 10), range(10, 17), range(17, 24), range(24, 31)),
    "tudui": (_prefixes("conv1"), _prefixes("conv2"), _prefixes("conv3")),
}
# The head: the child modules after the feature vector, in forward order (the notes' 全连接层). vgg16's and tudui's heads
# are several linear layers; only the last one changes shape with the class count, the others load from the source.
HEAD: dict[str, tuple[str, ...]] = {"resnet18": ("fc",), "mobilenet_v2": ("classifier",), "vgg16": ("classifier",),
                                    "tudui": ("Linear1", "Linear2")}


class Tudui(nn.Module):
    """03_cifar_train's network (the notes' 模型训练 / 完整项目代码), same layer names: 32×32 input, no activations."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 5, 1, 2)
        self.maxpool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(32, 32, 5, 1, 2)
        self.maxpool2 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(32, 64, 5, 1, 2)
        self.maxpool3 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.Linear1 = nn.Linear(1024, 64)
        self.Linear2 = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.children():
            x = layer(x)
        return x


def build_model(name: str, num_classes: int, **kwargs) -> nn.Module:
    """The architecture with random weights and a new `num_classes` head; kwargs go to torchvision (e.g. width_mult)."""
    if name == "tudui":
        return Tudui(num_classes, **kwargs)
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {MODELS}")
    return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)


def feature_extractor(model: nn.Module, name: str) -> nn.Module:
    """Image → feature vector: everything before the head, sharing the model's modules, so that
    `model(x) == head(feature_extractor(model, name)(x))` (the vector Extract Feature Vector caches)."""
    if name == "resnet18":
        return nn.Sequential(*[m for n, m in model.named_children() if n != "fc"], nn.Flatten(1))
    if name == "mobilenet_v2":  # torchvision's forward pools functionally; the same pooling as a module
        return nn.Sequential(model.features, nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    if name == "vgg16":
        return nn.Sequential(model.features, model.avgpool, nn.Flatten(1))
    if name == "tudui":
        return nn.Sequential(*[m for n, m in model.named_children() if n not in HEAD["tudui"]])
    raise ValueError(f"unknown model {name!r}; choose from {MODELS}")


class HeadOnly(nn.Module):
    """Extract Feature Vector's trainable model: it holds every child of `model` under its own name, so its state_dict
    (hence its checkpoint) is the whole model's and classifies images, but its forward runs only the head, on cached
    feature vectors."""

    def __init__(self, model: nn.Module, name: str) -> None:
        super().__init__()
        for child_name, child in model.named_children():
            self.add_module(child_name, child)
        self.head_names = HEAD[name]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        for child_name in self.head_names:
            features = self.get_submodule(child_name)(features)
        return features


if __name__ == "__main__":  # the split at a glance: parameters per stage and in the head
    for arch in MODELS:
        net = build_model(arch, num_classes=2)
        counts = [sum(p.numel() for n, p in net.named_parameters() if n.startswith(stage)) for stage in STAGES[arch]]
        head = sum(p.numel() for n, p in net.named_parameters() if n.startswith(_prefixes(*HEAD[arch])))
        print(f"{arch:13s} stages {counts}  head {head}")
