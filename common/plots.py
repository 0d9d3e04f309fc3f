"""Figures the training loop logs: the confusion matrix (TensorBoard image each epoch, a PNG with --test-only), and the
one way a figure is written to a file."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files and TensorBoard only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_figure(fig: plt.Figure, path: Path) -> Path:
    """Write a matplotlib figure (parent folders created) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def row_shares(matrix: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(counts, each row divided by its sum): where a label's images went; an empty row stays 0."""
    counts = np.asarray(matrix, dtype=np.float64)
    return counts, counts / np.maximum(counts.sum(1, keepdims=True), 1)


def confusion_figure(matrix: Sequence[Sequence[int]], class_names: Sequence[str], title: str) -> plt.Figure:
    """Rows (labels) normalised to sum 1, so a class's row reads as "where its images went"; the colour bar is that
    share, counts are written in the cells when there are at most 12 classes."""
    counts, shares = row_shares(matrix)
    n = len(class_names)
    side = min(2.0 + 0.45 * n, 14)
    fig, ax = plt.subplots(figsize=(side + 1.2, side), dpi=100)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="share of the label's images")
    ax.set_xticks(range(n), class_names, rotation=90 if n > 6 else 0, fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("label")
    ax.set_title(title)
    if n <= 12:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=8,
                        color="white" if shares[i, j] > 0.5 else "black")
    fig.tight_layout()
    return fig


def confusion_image(matrix: Sequence[Sequence[int]], class_names: Sequence[str], cell: int = 28) -> np.ndarray:
    """The same row-normalised matrix as an H×W×3 uint8 picture drawn with PIL (a few ms, where a matplotlib figure
    takes ~0.3 s): what the loop logs to TensorBoard every epoch. Rows are labels (names on the left), columns
    predictions (indices on top, in the same order), white → dark blue = share 0 → 1, counts in the cells."""
    from PIL import Image, ImageDraw

    counts, shares = row_shares(matrix)
    n, left, top = len(class_names), 8 + 7 * max(len(str(c)) for c in class_names), 18
    rgb = (matplotlib.colormaps["Blues"](shares)[..., :3] * 255).astype(np.uint8)
    grid = np.asarray(Image.fromarray(rgb).resize((n * cell, n * cell), Image.NEAREST))
    canvas = Image.new("RGB", (left + n * cell, top + n * cell), "white")
    canvas.paste(Image.fromarray(grid), (left, top))
    draw = ImageDraw.Draw(canvas)
    for i, name in enumerate(class_names):
        draw.text((2, top + i * cell + cell // 3), str(name), fill="black")
        draw.text((left + i * cell + cell // 3, 3), str(i), fill="black")
        for j in range(n):
            draw.text((left + j * cell + 3, top + i * cell + cell // 3), f"{int(counts[i, j])}",
                      fill="white" if shares[i, j] > 0.5 else "black")
    return np.asarray(canvas)
