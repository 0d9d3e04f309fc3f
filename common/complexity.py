"""Parameters and mult-adds of any model at a given input size: the MobileNet papers' cost measure, used by 05, 07 and 09."""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params_and_macs(model: nn.Module, image_size: int | tuple[int, int] = 224, in_channels: int = 3) -> dict:
    """Parameters and mult-adds of one image's eval-mode forward pass: torch's `FlopCounterMode`, which counts the
    convolutions (transposed too) and matrix products, halved (it counts a multiply-add as 2 FLOPs), so the number is
    the MobileNet papers' convention (BatchNorm, activations and pooling are not counted). Runs a copy of the model on
    the meta device, so it costs no compute at any size."""
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    probe = copy.deepcopy(model).to("meta").eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        probe(torch.empty(1, in_channels, h, w, device="meta"))
    return {"params": sum(p.numel() for p in model.parameters()), "macs": counter.get_total_flops() // 2}
