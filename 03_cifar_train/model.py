"""The notes' 模型训练 / gpu版本 network: `Tudui`, three 5×5 conv + 2×2 max-pool stages, Flatten, Linear(1024, 64), Linear(64, 10).

Exactly the notes' layers and names (the 模型训练 section calls the same net `Tom`). There is no activation function: the
max-pools are its only non-linearity, as in the notes.
"""
import torch
from torch import nn

MODELS = ("tudui",)
INPUT_SIZE = 32  # fixed: Linear1 expects 64 channels × 4 × 4 = 1024 after three 2× poolings


class Tudui(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 5, 1, 2)  # 3×32×32 → 32×32×32 (padding 2 keeps the size for a 5×5 kernel)
        self.maxpool1 = nn.MaxPool2d(2)  # → 32×16×16
        self.conv2 = nn.Conv2d(32, 32, 5, 1, 2)
        self.maxpool2 = nn.MaxPool2d(2)  # → 32×8×8
        self.conv3 = nn.Conv2d(32, 64, 5, 1, 2)
        self.maxpool3 = nn.MaxPool2d(2)  # → 64×4×4
        self.flatten = nn.Flatten()  # → 1024
        self.Linear1 = nn.Linear(1024, 64)
        self.Linear2 = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.maxpool1(x)
        x = self.conv2(x)
        x = self.maxpool2(x)
        x = self.conv3(x)
        x = self.maxpool3(x)
        x = self.flatten(x)
        x = self.Linear1(x)
        x = self.Linear2(x)
        return x


def build_model(name: str, num_classes: int = 10) -> nn.Module:
    if name != "tudui":
        raise ValueError(f"unknown model {name!r}; choose from {MODELS}")
    return Tudui(num_classes)


if __name__ == "__main__":  # the notes' shape check
    tudui = Tudui()
    output = tudui(torch.ones((64, 3, 32, 32)))
    print(output.shape)  # torch.Size([64, 10])
