"""Mean-field CRF post-processing in plain PyTorch (notes: Deeplab — V1/V2 refine the scores with a fully connected CRF,
V3 drops it).

Energy (Krähenbühl & Koltun 2011): E(x) = Σ_i −log P_i(x_i) + Σ_{i<j} μ(x_i, x_j) k(i, j), Potts μ = [x_i ≠ x_j], and
    k(i, j) = w_bilateral · exp(−|p_i − p_j|² / 2θα² − |I_i − I_j|² / 2θβ²)   near and similar colour → same label
            + w_spatial   · exp(−|p_i − p_j|² / 2θγ²)                        smoothness: removes small isolated regions.

Approximation: the fully connected CRF sums over every pixel pair (the paper uses the permutohedral lattice). Here the
pairwise sum is truncated to a local window (ConvCRF-style, Teichmann & Cipolla 2018): each pixel exchanges messages
only with the `window`×`window` pixels around it, taken every `dilation` pixels (11 at dilation 2 reaches ±10 pixels).
Inside the window the kernels are exact, outside they are zero; each kernel is symmetrically normalised as in
Krähenbühl's code (see `pairwise_weights`). Cost per iteration: window² · C · H · W multiply-adds. Memory: the cached
weights, window² · H · W floats (≈ 90 MB for a 500×375 VOC image at the defaults; about 4× that while building them).
"""
# No `from __future__ import annotations`: dataclasses then need the module in sys.modules, which tests/util.load skips.
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class CRFParams:
    """Defaults: DeepLab's kind of values (w1 4-5, θγ 3), tuned on the synthetic demo (crf_demo.py), where a spatial
    weight of 3 erodes the 1-px bars, so it is 1 here; θα matters little since the window's reach bounds it anyway."""
    iterations: int = 5
    window: int = 11                 # odd; the local window replacing the fully connected sum
    dilation: int = 2                # spacing of the window's taps, in pixels (2: the window reaches ±10 px)
    bilateral_weight: float = 5.0    # w1 in DeepLab's notation
    bilateral_xy: float = 20.0       # θα, pixels
    bilateral_rgb: float = 10.0      # θβ, RGB units in [0, 255]
    spatial_weight: float = 1.0      # w2
    spatial_xy: float = 3.0          # θγ, pixels

    def __post_init__(self) -> None:
        if self.iterations < 0 or self.window < 1 or self.window % 2 == 0 or self.dilation < 1:
            raise ValueError(f"CRF needs iterations >= 0, an odd window >= 1 and dilation >= 1, got {self}")
        if min(self.bilateral_xy, self.bilateral_rgb, self.spatial_xy) <= 0:
            raise ValueError(f"CRF kernel widths must be positive, got {self}")


def pairwise_weights(image: torch.Tensor, p: CRFParams) -> tuple[list[tuple[int, int]], torch.Tensor]:
    """Normalised kernel weight between every pixel i and i+o, for each window offset o ≠ 0: the offsets and a
    (len(offsets), N, 1, H, W) tensor with w_b·n_i k_b(i, i+o) n_{i+o} + w_s·(the same for the spatial kernel).

    n_i = (1 + Σ_j k(i, j))^(-1/2) is the symmetric normalisation of Krähenbühl's code (NORMALIZE_SYMMETRIC, its
    default): messages become weighted averages, so w1/w2 mean the same for any window, image or resolution. Offsets
    that leave the image get weight 0 (no neighbour there), so borders are not pulled toward the padding.
    """
    n, _, h, w = image.shape
    radius = p.window // 2 * p.dilation
    padded = F.pad(image, (radius,) * 4)
    inside = F.pad(torch.ones(n, 1, h, w, dtype=image.dtype, device=image.device), (radius,) * 4)
    offsets, windows, bilateral, spatial = [], [], [], []
    for dy in range(-radius, radius + 1, p.dilation):
        for dx in range(-radius, radius + 1, p.dilation):
            if dy == dx == 0:
                continue
            window = (..., slice(radius + dy, radius + dy + h), slice(radius + dx, radius + dx + w))
            d2 = float(dy * dy + dx * dx)
            colour = ((image - padded[window]) ** 2).sum(1, keepdim=True)
            bilateral.append(torch.exp(-d2 / (2 * p.bilateral_xy ** 2) - colour / (2 * p.bilateral_rgb ** 2))
                             * inside[window])
            spatial.append(math.exp(-d2 / (2 * p.spatial_xy ** 2)) * inside[window])
            offsets.append((dy, dx))
            windows.append(window)
    weights = torch.zeros(len(offsets), n, 1, h, w, dtype=image.dtype, device=image.device)
    for weight, kernel in ((p.bilateral_weight, torch.stack(bilateral)), (p.spatial_weight, torch.stack(spatial))):
        norm = (1 + kernel.sum(0)).rsqrt()  # the 1: the pixel itself, as in the permutohedral lattice's blur
        norm_at = F.pad(norm, (radius,) * 4)
        weights += weight * norm * kernel * torch.stack([norm_at[window] for window in windows])
    return offsets, weights


@torch.no_grad()
def crf_refine(probs: torch.Tensor, image: torch.Tensor, params: CRFParams | None = None) -> torch.Tensor:
    """Mean-field inference. probs: N×C×H×W class probabilities (softmax of the logits, at image size); image: N×3×H×W
    RGB in [0, 255]. Returns refined N×C×H×W probabilities.

    Each iteration: message m_i(l) = Σ_j k(i, j) Q_j(l) (j in the window); with Potts μ the pairwise energy of label
    l is Σ_{l'≠l} m_i(l') = Σ_l' m_i(l') − m_i(l), whose first term is the same for every label: Q_i ∝ P_i · exp(m_i).
    """
    p = params or CRFParams()
    if probs.dim() != 4 or image.dim() != 4 or probs.shape[0] != image.shape[0] or \
            probs.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"CRF needs N×C×H×W probabilities and an N×3×H×W image of the same size, got "
                         f"{tuple(probs.shape)} and {tuple(image.shape)}")
    h, w = probs.shape[-2:]
    offsets, weights = pairwise_weights(image.float(), p)
    radius = p.window // 2 * p.dilation
    unary = probs.float().clamp_min(1e-8).log()
    q = probs.float()
    for _ in range(p.iterations):
        padded = F.pad(q, (radius,) * 4)
        message = torch.zeros_like(q)
        for (dy, dx), k in zip(offsets, weights):
            message += k * padded[..., radius + dy:radius + dy + h, radius + dx:radius + dx + w]
        q = torch.softmax(unary + message, dim=1)
    return q
