"""Mean-field CRF post-processing in plain PyTorch (notes: Deeplab — V1/V2 refine the scores with a fully connected CRF,
V3 drops it).

Energy (Krähenbühl & Koltun 2011): E(x) = Σ_i −log P_i(x_i) + Σ_{i<j} μ(x_i, x_j) k(i, j), Potts μ = [x_i ≠ x_j], and
    k(i, j) = w_bilateral · exp(−|p_i − p_j|² / 2θα² − |I_i − I_j|² / 2θβ²)   near and similar colour → same label
            + w_spatial   · exp(−|p_i − p_j|² / 2θγ²)                        smoothness: removes small isolated regions.

Approximation: the fully connected CRF sums over every pixel pair (the paper uses the permutohedral lattice). Here the
pairwise sum is truncated to a local window (ConvCRF-style, Teichmann & Cipolla 2018): each pixel exchanges messages
only with the `window`×`window` pixels around it, taken every `dilation` pixels (11 at dilation 2 reaches r = ±10
pixels). Inside the window the kernels are exact, outside they are zero; each kernel is symmetrically normalised as in
Krähenbühl's code (see `pairwise_weights`). Cost per iteration: window² · C · H · W multiply-adds.

Memory: the cached weights are window² floats per pixel (≈ 90 MB for a 500×375 VOC image at the defaults, 1 GB at
1411×1411), so the image is refined in tiles of `tile`×`tile` pixels. Because messages only travel r pixels per
iteration, a tile computed together with a halo of `halo(params)` pixels of its surroundings gives exactly the untiled
result; the working memory is then that of one tile plus halo, whatever the image size (`memory_bytes`).
"""
# No `from __future__ import annotations`: dataclasses then need the module in sys.modules, which tests/util.load skips.
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class CRFParams:
    """Defaults: DeepLab's kind of values (w1 4-5, θγ 3), tuned on the synthetic demo (crf_demo.py), where a spatial
    weight of 3 erodes the 1-px bars, so it is 1 here; θα matters little since the window's reach bounds it anyway.
    `tile` changes only memory and time, never the result: at 512 the working set stays near 0.6 GB (21 classes)
    for any image, and the halo costs about 1.5× the untiled time."""
    iterations: int = 5
    window: int = 11                 # odd; the local window replacing the fully connected sum
    dilation: int = 2                # spacing of the window's taps, in pixels (2: the window reaches ±10 px)
    bilateral_weight: float = 5.0    # w1 in DeepLab's notation
    bilateral_xy: float = 20.0       # θα, pixels
    bilateral_rgb: float = 10.0      # θβ, RGB units in [0, 255]
    spatial_weight: float = 1.0      # w2
    spatial_xy: float = 3.0          # θγ, pixels
    tile: int = 512                  # side of the square tiles the image is refined in, pixels

    def __post_init__(self) -> None:
        if self.iterations < 0 or self.window < 1 or self.window % 2 == 0 or self.dilation < 1:
            raise ValueError(f"CRF needs iterations >= 0, an odd window >= 1 and dilation >= 1, got {self}")
        if min(self.bilateral_xy, self.bilateral_rgb, self.spatial_xy) <= 0:
            raise ValueError(f"CRF kernel widths must be positive, got {self}")
        if self.tile < 1:
            raise ValueError(f"CRF tile must be at least 1 pixel, got {self.tile}")


# one line per CRFParams field, for the --crf-* flags of predict.py and crf_demo.py
CRF_HELP = {"iterations": "mean-field iterations", "window": "odd window size replacing the fully connected sum",
            "dilation": "spacing of the window taps in pixels", "bilateral_weight": "w1, appearance kernel weight",
            "bilateral_xy": "θα, appearance kernel position std (pixels)",
            "bilateral_rgb": "θβ, appearance kernel colour std (RGB 0-255)",
            "spatial_weight": "w2, smoothness kernel weight", "spatial_xy": "θγ, smoothness kernel std (pixels)",
            "tile": "side of the tiles the CRF runs in (pixels); the result is the same for any value, the working "
                    "memory grows with (tile + 2·halo)², halo = (iterations + 1)·window//2·dilation"}


def reach(p: CRFParams) -> int:
    """r: how far (in pixels, along each axis) a pixel's window reaches, so how far a message travels per iteration."""
    return p.window // 2 * p.dilation


def halo(p: CRFParams) -> int:
    """Pixels of context a tile needs on each side for its result to equal the untiled one: (iterations + 1) · r.

    The weights of pixel i use n_i and n_{i+o}, and n_{i+o} sums over the window of i+o, so they depend on the image
    up to 2r from i; the first iteration's Q_i depends on those weights, and each further iteration on Q one r further
    out: 2r + (iterations − 1) · r. With no iterations the result is the input, which needs no context."""
    return (p.iterations + 1) * reach(p) if p.iterations else 0


def working_bytes(shape: tuple[int, int, int, int], p: CRFParams) -> int:
    """Estimate of the working set of `crf_refine` for N×C×H×W probabilities: that of its largest piece (a tile and
    its halo, clipped to the image, padded by r), whatever the image size. It holds the window² − 1 cached weights,
    the 6 C-channel tensors alive at once in the mean-field loop and up to 16 one-channel temporaries, counted at 8
    bytes a value, not 4: the CPU allocator does not hand every freed piece back, and the resident memory of the tile
    loop was measured at up to 1.6× its live tensors (README, CRF memory), so twice is the margin."""
    n, c, h, w = shape
    side = p.tile + 2 * halo(p)
    padded_area = (min(h, side) + 2 * reach(p)) * (min(w, side) + 2 * reach(p))
    return 8 * n * padded_area * (p.window ** 2 - 1 + 6 * c + 16)


def memory_bytes(shape: tuple[int, int, int, int], p: CRFParams) -> int:
    """Estimate of the memory `crf_refine` needs beyond its inputs: the full-size float32 result plus the working set
    (`working_bytes`). Lets a caller refuse an image before anything big is allocated."""
    n, c, h, w = shape
    return 4 * n * c * h * w + working_bytes(shape, p)


def pairwise_weights(image: torch.Tensor, p: CRFParams) -> tuple[list[tuple[int, int]], torch.Tensor]:
    """Normalised kernel weight between every pixel i and i+o, for each window offset o ≠ 0: the offsets and a
    (len(offsets), N, 1, H, W) tensor with w_b·n_i k_b(i, i+o) n_{i+o} + w_s·(the same for the spatial kernel).

    n_i = (1 + Σ_j k(i, j))^(-1/2) is the symmetric normalisation of Krähenbühl's code (NORMALIZE_SYMMETRIC, its
    default): messages become weighted averages, so w1/w2 mean the same for any window, image or resolution. Offsets
    that leave the image get weight 0 (no neighbour there), so borders are not pulled toward the padding.
    The bilateral kernel is written into the result and scaled there in place, so building it needs little more
    memory than the result itself.
    """
    n, _, h, w = image.shape
    radius = reach(p)
    taps = range(-radius, radius + 1, p.dilation)
    offsets = [(dy, dx) for dy in taps for dx in taps if (dy, dx) != (0, 0)]

    def shifted(padded: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
        """The value at i + (dy, dx) for every pixel i, from a tensor padded by `radius`."""
        return padded[..., radius + dy:radius + dy + h, radius + dx:radius + dx + w]

    padded = F.pad(image, (radius,) * 4)
    inside = F.pad(torch.ones(n, 1, h, w, dtype=image.dtype, device=image.device), (radius,) * 4)
    weights = image.new_empty(len(offsets), n, 1, h, w)
    spatial_sum = torch.zeros(n, 1, h, w, dtype=image.dtype, device=image.device)
    for weight, (dy, dx) in zip(weights, offsets):
        d2 = float(dy * dy + dx * dx)
        colour = (image - shifted(padded, dy, dx)).square_().sum(1, keepdim=True)
        torch.exp(colour.mul_(-1 / (2 * p.bilateral_rgb ** 2)).sub_(d2 / (2 * p.bilateral_xy ** 2)), out=weight)
        weight.mul_(shifted(inside, dy, dx))
        spatial_sum.add_(shifted(inside, dy, dx), alpha=math.exp(-d2 / (2 * p.spatial_xy ** 2)))
    bilateral_norm = (1 + weights.sum(0)).rsqrt_()  # the 1: the pixel itself, as in the permutohedral lattice's blur
    spatial_norm = (1 + spatial_sum).rsqrt_()
    bilateral_at, spatial_at = F.pad(bilateral_norm, (radius,) * 4), F.pad(spatial_norm, (radius,) * 4)
    for weight, (dy, dx) in zip(weights, offsets):
        spatial = p.spatial_weight * math.exp(-(dy * dy + dx * dx) / (2 * p.spatial_xy ** 2))
        weight.mul_(shifted(bilateral_at, dy, dx) * bilateral_norm).mul_(p.bilateral_weight)
        weight.add_(shifted(spatial_at, dy, dx) * shifted(inside, dy, dx) * spatial_norm, alpha=spatial)
    return offsets, weights


def mean_field(probs: torch.Tensor, image: torch.Tensor, p: CRFParams) -> torch.Tensor:
    """`crf_refine` on one piece, untiled: memory grows with the piece's area (the cached weights)."""
    h, w = probs.shape[-2:]
    offsets, weights = pairwise_weights(image.float(), p)
    radius = reach(p)
    unary = probs.float().clamp_min(1e-8).log()
    q = probs.float()
    for _ in range(p.iterations):
        padded = F.pad(q, (radius,) * 4)
        message = torch.zeros_like(q)
        for (dy, dx), k in zip(offsets, weights):
            message.addcmul_(k, padded[..., radius + dy:radius + dy + h, radius + dx:radius + dx + w])
        q = torch.softmax(unary + message, dim=1)
    return q


@torch.no_grad()
def crf_refine(probs: torch.Tensor, image: torch.Tensor, params: CRFParams | None = None) -> torch.Tensor:
    """Mean-field inference. probs: N×C×H×W class probabilities (softmax of the logits, at image size); image: N×3×H×W
    RGB in [0, 255]. Returns refined N×C×H×W float32 probabilities.

    Each iteration: message m_i(l) = Σ_j k(i, j) Q_j(l) (j in the window); with Potts μ the pairwise energy of label
    l is Σ_{l'≠l} m_i(l') = Σ_l' m_i(l') − m_i(l), whose first term is the same for every label: Q_i ∝ P_i · exp(m_i).
    The image is processed in `params.tile`-sized tiles, each with `halo(params)` pixels of context (see `halo`), so
    the result does not depend on the tile size and the memory is bounded by `memory_bytes`.
    """
    p = params or CRFParams()
    if probs.dim() != 4 or image.dim() != 4 or probs.shape[0] != image.shape[0] or \
            probs.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"CRF needs N×C×H×W probabilities and an N×3×H×W image of the same size, got "
                         f"{tuple(probs.shape)} and {tuple(image.shape)}")
    h, w = probs.shape[-2:]
    margin = halo(p)
    out = torch.empty(probs.shape, dtype=torch.float32, device=probs.device)
    for y0 in range(0, h, p.tile):
        for x0 in range(0, w, p.tile):
            y1, x1 = min(y0 + p.tile, h), min(x0 + p.tile, w)
            top, left = max(y0 - margin, 0), max(x0 - margin, 0)
            piece = (..., slice(top, min(y1 + margin, h)), slice(left, min(x1 + margin, w)))
            q = mean_field(probs[piece], image[piece], p)
            out[..., y0:y1, x0:x1] = q[..., y0 - top:y1 - top, x0 - left:x1 - left]
    return out
