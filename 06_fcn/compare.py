"""FCN-32s → 16s → 8s, the paper's staged training, on the synthetic set: does each skip (跳级结构) add detail?

    python 06_fcn/compare.py --quick                # the README table: light backbone, 64 px, 3 seeds, ~10 min on 2 CPUs
    python 06_fcn/compare.py --device cuda          # larger: 128 px, 4,000 images, more epochs

As in the FCN paper (section 4.2), FCN-16s starts from the trained FCN-32s (its new pool4 score layer at zero, so it
begins as 32s's coarse scores) and FCN-8s from the trained 16s; each fine-tuning stage gets the same budget. The
control "32s, same steps" trains FCN-32s as long as the whole chain, so a gain of 8s over it is the skips, not the
extra steps. Prints the
markdown table (mIoU, boundary IoU, the thin bar's IoU, mean ± sd over seeds) with its provenance line, and writes
`assets/compare.png` (bars) and `assets/stages.png` (image | label | 32s | 16s | 8s).
"""
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import experiment  # noqa: E402
from common.errors import cli_main  # noqa: E402
from common.experiment import Variant  # noqa: E402
from common.predict import load_for_prediction  # noqa: E402
from common.seg_predict import predict_mask  # noqa: E402
from common.synthetic import SyntheticSegmentation  # noqa: E402
from model import build_model  # noqa: E402
from train import main as train_main  # noqa: E402

BAR = SyntheticSegmentation.CLASSES.index("bar")  # the thin class: 1-3 px lines
STAGES = ["32s", "16s from 32s", "8s from 16s"]
# image size, training images, 32s epochs, epochs per later stage, batch: the README's CPU budget and the GPU one
QUICK, FULL = (64, 560, 10, 5, 16), (128, 4000, 16, 8, 16)
BUDGET = {"--image-size": "side of the synthetic images", "--synthetic-size": "training images",
          "--epochs": "epochs of FCN-32s", "--stage-epochs": "epochs of each fine-tuning stage", "-b": "batch size"}


def variants(first: int, stage: int) -> list[Variant]:
    epochs = lambda n: ["--epochs", str(n)]  # noqa: E731
    return [Variant("32s", ["--model", "fcn32s", *epochs(first)]),
            Variant("16s from 32s", ["--model", "fcn16s", *epochs(stage), "--weights", "{root}/32s/seed{seed}/last.pth"]),
            Variant("8s from 16s", ["--model", "fcn8s", *epochs(stage),
                                    "--weights", "{root}/16s from 32s/seed{seed}/last.pth"]),
            Variant("32s, same steps", ["--model", "fcn32s", *epochs(first + 2 * stage)])]


def stages_figure(root: Path, path: Path, seed: int, image_size: int, n: int = 3) -> Path:
    """Rows of val images: image | label | each stage's prediction (seed `seed`), VOC colours, with a legend."""
    val = SyntheticSegmentation(n, image_size=image_size, seed=seed, split="val")
    models = {name: load_for_prediction(root / name / f"seed{seed}" / "last.pth", build_model)[0] for name in STAGES}
    columns = {name: (lambda image, m=m: predict_mask(m, image, torch.device("cpu"))) for name, m in models.items()}
    return experiment.prediction_grid(val, columns, path, title=f"FCN stages on synthetic val images (seed {seed})",
                                      n=n)


def main(argv: list[str] | None = None) -> list[dict]:
    args = experiment.get_args_parser(__doc__, HERE.name, QUICK, FULL, BUDGET).parse_args(argv)
    size, images, first, stage, batch = experiment.budget_values(args, QUICK, FULL, BUDGET,
                                                                 positive=("--epochs", "--stage-epochs"))
    base = ["--data", "synthetic", "--backbone", "light", "--image-size", str(size), "--synthetic-size", str(images),
            "-b", str(batch), "--lr", "0.05", "--device", args.device, "--print-freq", "100"]
    start = time.perf_counter()
    rows = experiment.run(train_main, variants(first, stage), range(args.seeds), base, args.output_dir)
    for row in rows:
        row["bar_iou"] = row["iou"][BAR]
    print(f"\n{experiment.provenance(sys.argv[1:] if argv is None else argv, time.perf_counter() - start)}\n")
    print(experiment.table(rows, {"miou": "mIoU", "boundary_iou": "boundary IoU (2 px)", "bar_iou": "bar IoU"}))
    experiment.plot(rows, "miou", "mIoU (final epoch, val)", args.assets / "compare.png",
                    title=f"FCN staged training, {size} px synthetic, {args.seeds} seeds")
    stages_figure(args.output_dir, args.assets / "stages.png", seed=0, image_size=size)
    return rows


if __name__ == "__main__":
    cli_main(main)
