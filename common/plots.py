"""Figures the training loop logs: the confusion matrix (TensorBoard image each epoch, a PNG with --test-only)."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files and TensorBoard only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def confusion_figure(matrix: Sequence[Sequence[int]], class_names: Sequence[str], title: str) -> plt.Figure:
    """Rows (labels) normalised to sum 1, so a class's row reads as "where its images went"; the colour bar is that
    share, counts are written in the cells when there are at most 12 classes."""
    counts = np.asarray(matrix, dtype=np.float64)
    shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
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
