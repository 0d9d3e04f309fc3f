"""Parameters and mult-adds of any model at a given input size: the MobileNet papers' cost measure, used by 05, 07 and 09."""
from __future__ import annotations

import copy
import math

import torch
from torch import nn


def count_params_and_macs(model: nn.Module, image_size: int | tuple[int, int] = 224, in_channels: int = 3) -> dict:
    """Parameters and mult-adds (multiply-accumulates of conv and linear layers, the MobileNet papers' convention) of
    one image's eval-mode forward pass. Runs a copy of the model on the meta device, so it costs no compute at any size."""
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    probe = copy.deepcopy(model).to("meta").eval()
    macs = 0

    def on_conv(m: nn.modules.conv._ConvNd, inputs: tuple, out: torch.Tensor) -> None:
        nonlocal macs
        per_position = m.in_channels // m.groups * math.prod(m.kernel_size)
        if m.transposed:  # every input pixel scatters a kernel into each output channel
            macs += inputs[0].numel() * m.out_channels // m.groups * math.prod(m.kernel_size)
        else:             # every output pixel is a dot product over (in/groups)·k·k inputs
            macs += out.numel() * per_position

    def on_linear(m: nn.Linear, inputs: tuple, out: torch.Tensor) -> None:
        nonlocal macs
        macs += out.numel() * m.in_features

    for m in probe.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            m.register_forward_hook(on_conv)
        elif isinstance(m, nn.Linear):
            m.register_forward_hook(on_linear)
    with torch.no_grad():
        probe(torch.empty(1, in_channels, h, w, device="meta"))
    return {"params": sum(p.numel() for p in model.parameters()), "macs": macs}
