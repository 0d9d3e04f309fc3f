"""Grad-CAM (Selvaraju et al. 2017): where in the image the evidence for a class is, from the last convolutional stage.

The stage's activations A_k (K channels, h×w) are weighted by the spatial mean of d score_c / d A_k and summed, a ReLU
keeps what speaks *for* the class: cam = ReLU(Σ_k mean(∂y_c/∂A_k) · A_k), upsampled to the image and scaled to [0, 1].
The stage is found, not named: the last module whose output is a feature map (N×C×h×w, h·w > 1), so the same code
works for Tudui, MobileNet, GoogLeNet and ResNet.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn


def last_feature_map(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """The module that produced the last N×C×h×w output (h·w > 1) of a forward pass: the last convolutional stage."""
    seen: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda mod, _i, out: seen.append(mod) if isinstance(out, torch.Tensor)
                                     and out.dim() == 4 and out.shape[-1] * out.shape[-2] > 1 else None)
             for m in model.modules() if m is not model]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    if not seen:
        raise ValueError(f"{type(model).__name__} has no module with a spatial feature map to explain")
    return seen[-1]


def grad_cam(model: nn.Module, x: torch.Tensor, class_index: int | None = None,
             layer: nn.Module | None = None) -> tuple[torch.Tensor, int]:
    """(H×W map in [0, 1] at the input's size, the class explained: `class_index` or the top-1) for one image x (1×3×H×W).
    If an in-place op (ReLU(inplace=True)) rewrites the layer's output, the map uses the rewritten, activated values."""
    model.eval()
    layer = layer or last_feature_map(model, x)
    kept: list[torch.Tensor] = []

    hook = layer.register_forward_hook(lambda _mod, _inputs, out: kept.append(out))
    try:
        with torch.enable_grad():
            scores = model(x)
            index = int(scores[0].argmax()) if class_index is None else class_index
            (grads,) = torch.autograd.grad(scores[0, index], kept[0])
    finally:
        hook.remove()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * kept[0]).sum(1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    return cam / cam.max() if cam.max() > 0 else cam, index


def cam_overlay(image: Image.Image, cam: torch.Tensor, alpha: float = 0.5) -> Image.Image:
    """The image with the map as a jet heat map blended in (red = most evidence), at the image's size."""
    import matplotlib

    heat = matplotlib.colormaps["jet"](np.asarray(Image.fromarray((cam.numpy() * 255).astype(np.uint8)).resize(
        image.size, Image.BILINEAR)) / 255.0)[..., :3]
    blended = (1 - alpha) * np.asarray(image.convert("RGB"), dtype=np.float32) / 255 + alpha * heat
    return Image.fromarray((blended * 255).round().astype(np.uint8), mode="RGB")
