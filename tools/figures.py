"""Regenerate every PNG the READMEs show, by one command: the figures that need no training by default, the
experiments' figures (each folder's `compare.py --quick`, the run behind its README table) with `--experiments`.

    python tools/figures.py                        # the drawings: synthetic data, receptive fields, sheets (~1 min)
    python tools/figures.py --experiments          # also every experiment's table and figures (~10 min each on 2 CPUs)
    python tools/figures.py rates 06_compare       # some of them, by name
    python tools/figures.py --list                 # each name, what it runs and the PNGs it writes

Each figure has a title and a legend or colour bar; the README next to it embeds the PNG. `FIGURES` names every PNG in
the repository (tests/test_experiment.py fails on a PNG that no entry makes).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from common import experiment  # noqa: E402
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
    return experiment.save_figure(fig, path)


def run_script(*args: str) -> None:
    """A folder's script in its own process (folders import their `model`/`train` by those plain names)."""
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)


def transform_sheet(path: Path) -> None:
    """02's contact sheet of every transform stage, from the house picture its README draws."""
    from PIL import Image, ImageDraw

    with tempfile.TemporaryDirectory() as tmp:
        house = Path(tmp) / "house.png"
        im = Image.new("RGB", (320, 240), "skyblue")
        draw = ImageDraw.Draw(im)
        draw.ellipse((30, 25, 120, 115), "gold")
        draw.rectangle((0, 200, 320, 240), "forestgreen")
        draw.rectangle((170, 120, 290, 210), "firebrick")
        draw.polygon([(160, 120), (230, 60), (300, 120)], "saddlebrown")
        im.save(house)
        run_script("02_tensorboard_transforms/predict.py", str(house), "--crop-size", "160", "--sheet", str(path),
                   "--logdir", str(Path(tmp) / "runs"))


@dataclass
class Figure:
    """What makes some PNGs (paths relative to the repository root), and whether it trains (an experiment)."""
    make: Callable[[], object]
    outputs: tuple[str, ...]
    experiment: bool = False


def compare(folder: str, *assets: str, flags: tuple[str, ...] = ()) -> Figure:
    """A folder's `compare.py --quick [flags]`: the README table's run, which also writes these PNGs (paths under the
    folder's assets/; flags that move them say `--assets` too)."""
    return Figure(lambda: run_script(f"{folder}/compare.py", "--quick", *flags),
                  tuple(f"{folder}/assets/{a}" for a in assets), experiment=True)


RATES = ("2,2,2", "1,2,5", "1,2,9")
FIGURES = {
    "synthetic_context": Figure(lambda: synthetic_context(ROOT / "common/assets/synthetic_context.png"),
                                ("common/assets/synthetic_context.png",)),
    "rates": Figure(lambda: run_script("04_dilated_conv/receptive_field.py", *RATES, "--out-dir", "04_dilated_conv/assets"),
                    tuple(f"04_dilated_conv/assets/rates_{r.replace(',', '_')}.png" for r in RATES)),
    "transform_sheet": Figure(lambda: transform_sheet(ROOT / "02_tensorboard_transforms/contact_sheet.png"),
                              ("02_tensorboard_transforms/contact_sheet.png",)),
    "04_compare": compare("04_dilated_conv", "compare.png", "predictions.png", "receptive_field_hdc.png",
                          "receptive_field_gridding.png", "receptive_field_downsample.png"),
    "05_compare": compare("05_mobilenet", "accuracy_vs_macs.png"),
    "06_compare": compare("06_fcn", "compare.png", "stages.png"),
    "07_compare": compare("07_deeplab", "compare.png", "versions.png"),
    "08_shift": Figure(lambda: run_script("08_transfer/shift.py"), ("08_transfer/assets/target_vs_source.png",)),
    "08_compare": compare("08_transfer", "shots.png"),
    "09_compare": compare("09_googlenet", "grad_norm.png", "head_accuracy.png"),
    "09_compare_adamw": compare("09_googlenet", "adamw_4classes/grad_norm.png", "adamw_4classes/head_accuracy.png",
                                flags=("--classes", "4", "--opt", "adamw", "--lr", "0.001", "--steps", "120", "--batch",
                                       "16", "--images", "960", "--val-images", "200", "--log-every", "30", "--assets",
                                       "09_googlenet/assets/adamw_4classes")),
}


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"figures to make, of {list(FIGURES)} (default: all "
                                                                 "drawings, and the experiments with --experiments)")
    parser.add_argument("--experiments", action="store_true", help="also run every compare.py --quick")
    parser.add_argument("--list", action="store_true", help="print each figure's name and PNGs, make nothing")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in FIGURES]
    if unknown:
        parser.error(f"unknown figure {unknown[0]!r}; choose from {list(FIGURES)}")
    names = args.names or [n for n, f in FIGURES.items() if args.experiments or not f.experiment]
    made = []
    for name in names:
        figure = FIGURES[name]
        if not args.list:
            figure.make()
        print(f"{name}{' (experiment)' if figure.experiment else ''}: {', '.join(figure.outputs)}")
        made += figure.outputs
    return made


if __name__ == "__main__":
    main()
