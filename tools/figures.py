"""Regenerate the figures that need no training run (the synthetic data's picture); experiment figures come from each
folder's compare.py.

    python tools/figures.py                      # all of them
    python tools/figures.py synthetic_context    # one

Each figure has a title and a legend or colour bar; the README next to it embeds the PNG.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from common.palette import voc_palette  # noqa: E402
from common.synthetic import SyntheticContext  # noqa: E402


def synthetic_context(path: Path) -> Path:
    """Four samples of `--synthetic-task context` at 128 px: image over mask, classes in the VOC colours, with a legend;
    dot_a (yellow markers) and dot_b (cyan markers) differ only by what sits 20-40 px away."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    ds = SyntheticContext(4, image_size=128, split="val")
    colours = np.asarray(voc_palette(), dtype=np.float32).reshape(256, 3) / 255
    fig, axes = plt.subplots(2, 4, figsize=(10, 5.6), dpi=110)
    for i in range(4):
        img, mask = ds.sample(i)
        axes[0, i].imshow(img)
        axes[1, i].imshow(colours[mask])
        axes[0, i].set_title(f"val image {i}", fontsize=9)
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("image")
    axes[1, 0].set_ylabel("label (255 = void band)")
    handles = [Patch(color=colours[k], label=name) for k, name in enumerate(ds.classes)]
    handles.append(Patch(color=colours[255], label="void"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle("SyntheticContext: dot_a has yellow markers 20-40 px away, dot_b cyan; shapes at several scales")
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


FIGURES = {"synthetic_context": (synthetic_context, ROOT / "common" / "assets" / "synthetic_context.png")}


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"figures to make, of {list(FIGURES)} (default: all)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in FIGURES]
    if unknown:
        parser.error(f"unknown figure {unknown[0]!r}; choose from {list(FIGURES)}")
    written = [FIGURES[name][0](FIGURES[name][1]) for name in (args.names or FIGURES)]
    for path in written:
        print(path.relative_to(ROOT))
    return written


if __name__ == "__main__":
    main()
