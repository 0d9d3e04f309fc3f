"""Gridding made visible (notes: 膨胀卷积, The Gridding Effect): which input pixels reach one output pixel.

Stack 3×3 convolutions with the given dilation rates, set every weight to 1, and take the gradient of the centre output
with respect to the input: each input pixel's value is the number of paths from it to that output. Zeros inside the
receptive field are the holes that [2, 2, 2] leaves and [1, 2, 5] (HDC) does not.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_stack_field(layers: Sequence[tuple[int, int, int]]) -> torch.Tensor:
    """Path counts (S×S, float64) from each input pixel to the single output pixel of a chain of convs.

    `layers` are (kernel, dilation, stride) in order. The input is exactly one receptive field wide,
    S = 1 + Σ (k_i − 1) d_i J_i with J_i the product of the earlier strides, and every conv is unpadded, so the output is
    1×1 and the gradient covers the whole field with no border effects.
    """
    size, jump = 1, 1
    for kernel, dilation, stride in layers:
        size += (kernel - 1) * dilation * jump
        jump *= stride
    x = torch.zeros(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    y = x
    for kernel, dilation, stride in layers:
        y = F.conv2d(y, torch.ones(1, 1, kernel, kernel, dtype=torch.float64), stride=stride, dilation=dilation)
    y.sum().backward()
    return x.grad[0, 0]


def receptive_field(rates: Sequence[int], kernel_size: int = 3) -> torch.Tensor:
    """The field of a stack of stride-1 `kernel_size` convs with the given dilation rates (e.g. [2, 2, 2], [1, 2, 5])."""
    return conv_stack_field([(kernel_size, r, 1) for r in rates])


def model_receptive_field(model: nn.Module) -> torch.Tensor:
    """The field of a model that is a plain chain of convs (as 04's model is): its Conv2d layers in registration order,
    weights replaced by ones. It shows which pixels can reach an output, not how much a trained net uses them.
    The field is square, so every conv must be too (kernel, dilation and stride equal along both axes)."""
    layers = [(m.kernel_size, m.dilation, m.stride) for m in model.modules() if isinstance(m, nn.Conv2d)]
    if any(h != w for layer in layers for h, w in layer):
        raise ValueError(f"model_receptive_field needs square convs, got (kernel, dilation, stride) {layers}")
    return conv_stack_field([tuple(h for h, _ in layer) for layer in layers])


def count_holes(field: torch.Tensor) -> int:
    """Input pixels inside the receptive field's square that never reach the output (the gridding holes)."""
    return int((field == 0).sum())


def heatmap_figure(field: torch.Tensor, title: str):
    """Path counts as a matplotlib figure: one square per input pixel, coloured by its number of paths to the centre
    output (viridis, scale on the colour bar), holes black (a legend entry says so); axes in pixels from the centre."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    counts = field.numpy()
    rows, cols = counts.shape
    extent = (-(cols // 2) - 0.5, cols - cols // 2 - 0.5, rows - rows // 2 - 0.5, -(rows // 2) - 0.5)
    cmap = plt.get_cmap("viridis").with_extremes(bad="black")  # masked (0 paths) squares are drawn black
    fig, ax = plt.subplots(figsize=(5.2, 4.4), dpi=110)
    image = ax.imshow(np.ma.masked_equal(counts, 0), cmap=cmap, extent=extent, interpolation="nearest")
    fig.colorbar(image, ax=ax, label="paths from the input pixel to the centre output")
    fig.legend(handles=[Patch(color="black", label="hole: 0 paths")], loc="lower left", fontsize=8, frameon=False)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("input column, px from the centre")
    ax.set_ylabel("input row, px from the centre")
    fig.tight_layout(rect=(0, 0.04, 1, 1))  # room for the legend below
    return fig


def save_heatmap_figure(field: torch.Tensor, path: str | Path, title: str) -> Path:
    """Write `heatmap_figure(field, title)` as a PNG (parent folders created) and close it."""
    import matplotlib.pyplot as plt

    fig = heatmap_figure(field, title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def save_heatmap(rates: Sequence[int], path: str | Path, kernel_size: int = 3) -> int:
    """Write the heatmap PNG for `rates` to `path` and return its hole count."""
    field = receptive_field(rates, kernel_size)
    holes = count_holes(field)
    save_heatmap_figure(field, path, f"rates {list(rates)}: {field.shape[0]}x{field.shape[1]} field, {holes} holes")
    return holes


def main(argv: list[str] | None = None) -> None:
    """`python 04_dilated_conv/receptive_field.py 2,2,2 1,2,5 --out-dir DIR`: one heatmap PNG per list of rates."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("rates", nargs="+", help="comma-separated dilation rates of stacked 3×3 convs, e.g. 1,2,5")
    parser.add_argument("--out-dir", type=Path, default=Path("runs/04_dilated_conv/receptive_field"),
                        help="where the PNGs go (default: %(default)s)")
    args = parser.parse_args(argv)
    for spec in args.rates:
        try:
            rates = [int(r) for r in spec.split(",")]
        except ValueError:
            parser.error(f"rates must be comma-separated integers, got {spec!r}")
        if min(rates) < 1:
            parser.error(f"rates must be >= 1, got {spec!r}")
        path = args.out_dir / f"rates_{'_'.join(map(str, rates))}.png"
        print(f"{path}: {save_heatmap(rates, path)} holes")


if __name__ == "__main__":
    main()
