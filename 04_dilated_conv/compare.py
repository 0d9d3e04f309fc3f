"""hdc vs gridding vs downsample with the same parameters and budget (notes: 膨胀卷积, gridding effect, HDC), over seeds.

    python 04_dilated_conv/compare.py --quick          # the README table: 3 seeds on 64 px synthetic images, 2 CPUs
    python 04_dilated_conv/compare.py --device cuda    # larger: 96 px, 4,000 images, 16 epochs

The three variants differ only in each body conv's dilation and stride (61,014 parameters each at width 32): `hdc` rates
(1, 2, 5), `gridding` (2, 2, 2), `downsample` stride 2 instead of dilation. Every run gets the same data, epochs, batch
and learning rate. Prints the markdown table (mIoU, boundary IoU, the thin bar's IoU, mean ± sd over seeds) with its
provenance line, and writes `assets/compare.png` (bars), `assets/predictions.png` (image | label | each variant) and
`assets/receptive_field_<variant>.png` (each net's receptive field with a colour bar).
"""
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from common import experiment  # noqa: E402
from common.errors import cli_main  # noqa: E402
from common.experiment import Variant  # noqa: E402
from common.predict import load_for_prediction  # noqa: E402
from common.seg_predict import predict_mask  # noqa: E402
from common.synthetic import SyntheticSegmentation  # noqa: E402
from model import MODELS, build_model  # noqa: E402
from receptive_field import count_holes, model_receptive_field, save_heatmap_figure  # noqa: E402
from train import main as train_main  # noqa: E402

BAR = SyntheticSegmentation.CLASSES.index("bar")  # the thin class: 1-3 px lines, where a coarse map fails first
VARIANTS = [Variant(name, ["--model", name]) for name in MODELS]
# image size, training images, epochs, batch: the README's CPU budget and the GPU one
QUICK, FULL = (64, 1000, 8, 8), (96, 4000, 16, 16)


def figures(root: Path, assets: Path, seed: int, image_size: int) -> list[Path]:
    """The trained nets of seed `seed`: predictions on three val images, and each net's receptive field."""
    models = {name: load_for_prediction(root / name / f"seed{seed}" / "last.pth", build_model)[0] for name in MODELS}
    columns = {name: (lambda image, m=m: predict_mask(m, image, torch.device("cpu"))) for name, m in models.items()}
    val = SyntheticSegmentation(3, image_size=image_size, seed=seed, split="val")
    paths = [experiment.prediction_grid(val, columns, assets / "predictions.png",
                                        title=f"hdc / gridding / downsample on synthetic val images (seed {seed})")]
    for name, model in models.items():
        field = model_receptive_field(model)
        paths.append(save_heatmap_figure(field, assets / f"receptive_field_{name}.png",
                                         f"{name}: {field.shape[0]}x{field.shape[1]} field, {count_holes(field)} holes"))
    return paths


def main(argv: list[str] | None = None) -> list[dict]:
    args = experiment.get_args_parser(__doc__, HERE.name, QUICK, FULL).parse_args(argv)
    size, images, epochs, batch = experiment.budget_values(args, QUICK, FULL)
    base = ["--data", "synthetic", "--image-size", str(size), "--synthetic-size", str(images), "--epochs", str(epochs),
            "-b", str(batch), "--lr", "0.05", "--device", args.device, "--print-freq", "100"]
    start = time.perf_counter()
    rows = experiment.run(train_main, VARIANTS, range(args.seeds), base, args.output_dir)
    for row in rows:
        row["bar_iou"] = row["iou"][BAR]
    print(f"\n{experiment.provenance(sys.argv[1:] if argv is None else argv, time.perf_counter() - start)}\n")
    print(experiment.table(rows, {"miou": "mIoU", "boundary_iou": "boundary IoU (2 px)", "bar_iou": "bar IoU",
                                  "pixel_accuracy": "pixel accuracy"}))
    experiment.plot(rows, "miou", "mIoU (final epoch, val)", args.assets / "compare.png",
                    title=f"Dilation variants, {size} px synthetic, {args.seeds} seeds")
    figures(args.output_dir, args.assets, seed=0, image_size=size)
    return rows


if __name__ == "__main__":
    cli_main(main)
