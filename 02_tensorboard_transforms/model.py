"""A small classifier for the notes' tensorboard / transforms sections: the model TensorBoard's Graphs tab draws.

Two conv-BN-ReLU pairs per stage, two stages with max-pooling, global average pooling, dropout, linear: small enough to
train in seconds on a CPU, with named blocks so the graph and the `weights/...` histograms read clearly.
"""
import torch
from torch import nn

MODELS = ("convnet",)


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class ConvNet(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 32, dropout: float = 0.2) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(conv_bn_relu(3, width), conv_bn_relu(width, width), nn.MaxPool2d(2))
        self.stage2 = nn.Sequential(conv_bn_relu(width, 2 * width), conv_bn_relu(2 * width, 2 * width), nn.MaxPool2d(2))
        self.pool = nn.AdaptiveAvgPool2d(1)  # any input size
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage2(self.stage1(x))
        x = torch.flatten(self.pool(x), 1)
        return self.fc(self.dropout(x))


def build_model(name: str, num_classes: int = 10, **kwargs) -> nn.Module:
    if name != "convnet":
        raise ValueError(f"unknown model {name!r}; choose from {MODELS}")
    return ConvNet(num_classes, **kwargs)


if __name__ == "__main__":  # shape check in the notes' style
    print(ConvNet()(torch.ones((64, 3, 32, 32))).shape)  # torch.Size([64, 10])
