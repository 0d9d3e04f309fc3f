"""A small CNN for the notes' ants-vs-bees data set (数据集Dataset导入): the model is not the point of this folder, the data is.

Three conv → BatchNorm → ReLU → max-pool stages and a global average pool, so it takes any input size (the Tudui net of
03_cifar_train only takes 32×32) and trains in seconds on a CPU.
"""
import torch
from torch import nn

MODELS = ("smallcnn",)


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),  # BatchNorm has its own bias
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),  # halves H and W
    )


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int = 2, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(conv_block(3, width), conv_block(width, 2 * width), conv_block(2 * width, 4 * width))
        self.pool = nn.AdaptiveAvgPool2d(1)  # N×C×h×w → N×C×1×1 whatever h and w are
        self.classifier = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def build_model(name: str, num_classes: int = 2, **kwargs) -> nn.Module:
    if name != "smallcnn":
        raise ValueError(f"unknown model {name!r}; choose from {MODELS}")
    return SmallCNN(num_classes, **kwargs)


if __name__ == "__main__":  # shape check in the notes' style
    model = SmallCNN()
    print(model(torch.ones((16, 3, 64, 64))).shape)  # torch.Size([16, 2])
