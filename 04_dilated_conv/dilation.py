"""The notes' 膨胀卷积 formulas as functions: dilated kernel size, output size, size-keeping padding, and the HDC check.

Each function is the formula written once so the README's numbers (19×19 input, k = 3, r = 6 → 13, padding 6) and the HDC
examples ([1, 2, 5] valid, [1, 2, 9] not, for K = 3) are reproduced by tests rather than typed by hand.
"""
from __future__ import annotations

import math


def dilated_kernel_size(kernel_size: int, dilation: int) -> int:
    """膨胀后的卷积核尺寸 = 膨胀系数 × (原始卷积核尺寸 − 1) + 1: the span the dilated kernel actually covers."""
    if kernel_size < 1 or dilation < 1:
        raise ValueError(f"kernel_size and dilation must be >= 1, got {kernel_size} and {dilation}")
    return dilation * (kernel_size - 1) + 1


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output = floor((W − F + 2P) / S) + 1 with F the dilated kernel size; convolution rounds down (卷积向下取整).

    Matches `nn.Conv2d`; a result below 1 means the kernel does not fit and is an error, as it is in PyTorch.
    """
    span = dilated_kernel_size(kernel_size, dilation)
    out = (size - span + 2 * padding) // stride + 1
    if out < 1:
        raise ValueError(f"kernel span {span} does not fit into size {size} with padding {padding}")
    return out


def pool_output_size(size: int, kernel_size: int, stride: int | None = None, padding: int = 0,
                     dilation: int = 1, ceil_mode: bool = False) -> int:
    """Pooling output size; the stride defaults to the kernel size (池化步长默认为卷积核尺寸).

    The notes say pooling rounds up (池化向上取整): that is Caffe's convention, PyTorch's `ceil_mode=True`. PyTorch's
    default is `ceil_mode=False` (round down, like convolution). With ceil_mode a last window that would start in the
    right padding is dropped, exactly as `nn.MaxPool2d` does.
    """
    stride = kernel_size if stride is None else stride
    span = dilated_kernel_size(kernel_size, dilation)
    rounding = math.ceil if ceil_mode else math.floor
    out = rounding((size - span + 2 * padding) / stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    if out < 1:
        raise ValueError(f"pooling span {span} does not fit into size {size} with padding {padding}")
    return out


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """The padding P that keeps W at stride 1: solve (W − F + 2P) / 1 + 1 = W, i.e. P = (F − 1) / 2.

    An even dilated span has no symmetric solution, so it is an error (PyTorch's `padding='same'`, since 1.9, pads such a
    span one pixel more on the right/bottom, shifting the output by half a pixel).
    """
    span = dilated_kernel_size(kernel_size, dilation)
    if span % 2 == 0:
        raise ValueError(f"dilated kernel span {span} is even: no symmetric padding keeps the size")
    return (span - 1) // 2


def hdc_max_distances(rates: list[int] | tuple[int, ...]) -> list[int]:
    """M_i, the largest distance between two non-zero taps seen by layer i, for stacked dilated convs (HDC).

    M_n = r_n and M_i = max[M_{i+1} − 2 r_i, M_{i+1} − 2 (M_{i+1} − r_i), r_i], going from the last layer down.
    Returns [M_1, ..., M_n]. M_1 == 1 means the stack sees every input pixel: no gridding. The recursion describes one
    HDC group of non-decreasing rates (HDC repeats such groups, e.g. [1, 2, 5, 1, 2, 5]); for those, M_1 == 1 agrees with
    the hole count of `receptive_field.py` (checked in the tests).
    """
    if not rates or any(r < 1 for r in rates):
        raise ValueError(f"rates must be a non-empty list of integers >= 1, got {list(rates)}")
    distances = [rates[-1]]
    for r in reversed(rates[:-1]):
        m = distances[0]
        distances.insert(0, max(m - 2 * r, m - 2 * (m - r), r))
    return distances


def hdc_valid(rates: list[int] | tuple[int, ...], kernel_size: int = 3) -> bool:
    """The HDC design rules: the notes' M_2 <= K, and the HDC paper's "the rates have no common factor greater than 1"
    (Wang et al., Understanding Convolution for Semantic Segmentation, WACV 2018, section 3.3). A single layer has no
    M_2; it is valid only with rate 1.

    M_2 <= K alone passes the notes' own gridding example [2, 2, 2] (M_2 = 2): every rate is even, so only even offsets
    are ever read. The common-factor rule refuses it. `hdc_max_distances(rates)[0] == 1` is the full no-holes condition.
    """
    distances = hdc_max_distances(rates)
    if math.gcd(*rates) > 1:
        return False
    return distances[1] <= kernel_size if len(distances) > 1 else rates[0] == 1
