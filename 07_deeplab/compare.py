"""DeepLab V1 → V2 → V3 → V3+ as an ablation at one output stride, on data where field of view matters; CRF on V1/V2.

    python 07_deeplab/compare.py --quick          # the README table: light backbone, 64 px context data, 3 seeds, 2 CPUs
    python 07_deeplab/compare.py --device cuda    # larger: 160 px, 4,000 images, more epochs

Every version runs at output stride 8 on the same `light` backbone (ResNet-18's layout at 1/4 width) with the same data,
epochs, batch and learning rate, so each row adds one thing to the row above: LargeFOV (V1) → ASPP, four summed rates
(V2) → ASPP with BN, a 1×1 branch and image pooling, multi-grid 1, 2, 4 (V3) → the stride-4 decoder (V3+). The published rates are for a 513 px crop (a 65-pixel feature map at stride 8); on a small image they would be
as large as the whole map, where a 3×3 atrous conv is a 1×1 conv, so every rate is scaled by map / 65 (`scaled_rates`:
at 64 px, V1 1, V2 1 1 2 3, V3 1 3 4; at 160 px, V1 4, V2 2 4 6 7, V3 4 7 11).
The data is `--synthetic-task context`: dot_a and dot_b differ only by markers 20-40 px away. V1/V2 are then evaluated
again with the mean-field CRF (crf.py), the papers' post-processing. Prints the table (mIoU, boundary IoU, context-dot
IoU, mean ± sd over seeds) and the CRF table, and writes `assets/compare.png` and `assets/versions.png`.
"""
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from common import experiment  # noqa: E402
from common.errors import UserError, cli_main  # noqa: E402
from common.experiment import Variant  # noqa: E402
from common.metrics import BoundaryIoU, ConfusionMatrix, MetricSet  # noqa: E402
from common.predict import load_for_prediction  # noqa: E402
from common.seg_predict import predict_mask  # noqa: E402
from common.synthetic import SyntheticContext  # noqa: E402
from crf import CRFParams, crf_refine  # noqa: E402
from model import HEAD_RATES, build_model  # noqa: E402
from train import main as train_main  # noqa: E402

OUTPUT_STRIDE, CROP = 8, 513  # the papers' VOC crop: a 65-pixel feature map at stride 8
DOTS = [SyntheticContext.CLASSES.index("dot_a"), SyntheticContext.CLASSES.index("dot_b")]
CRF_VERSIONS = ("V1 LargeFOV", "V2 ASPP")
# image size, training images, epochs, batch: the README's CPU budget and the GPU one
QUICK, FULL = (64, 640, 6, 8), (160, 4000, 20, 16)
# AdamW at 5e-4 for every version: with the recipe's SGD (lr 0.05) every version predicted only background after
# the quick budget (README); one-seed probes of V2 gave mIoU 0.112 (SGD 0.05), 0.156 (AdamW 1e-3), 0.164 (5e-4)
LR = 5e-4


def scaled_rates(version: str, image_size: int, output_stride: int = OUTPUT_STRIDE) -> list[int]:
    """The version's published atrous rates at `output_stride`, times (this feature map's side / a 513 px crop's),
    rounded, at least 1: the same field of view relative to the map as in the paper."""
    rates, stride = HEAD_RATES[version]
    scale = -(-image_size // output_stride) / -(-CROP // output_stride)
    return [max(1, round(r * stride / output_stride * scale)) for r in rates]


def variants(image_size: int) -> list[Variant]:
    def version(name: str, model: str, *extra: str) -> Variant:
        rates = [str(r) for r in scaled_rates(model, image_size)]
        return Variant(name, ["--model", model, "--atrous-rates", *rates, *extra])
    return [version("V1 LargeFOV", "deeplabv1"), version("V2 ASPP", "deeplabv2"), version("V3", "deeplabv3"),
            version("V3+ decoder", "deeplabv3plus")]


def evaluate(model: torch.nn.Module, val: SyntheticContext, postprocess=None) -> dict:
    """mIoU, boundary IoU and per-class IoU of `model` on `val` (image by image, as predict.py segments)."""
    metrics = MetricSet(ConfusionMatrix(len(val.classes)), BoundaryIoU(len(val.classes)))
    for i in range(len(val)):
        image, _ = val[i]
        mask = predict_mask(model, image, torch.device("cpu"), postprocess=postprocess)
        metrics.update(torch.from_numpy(mask)[None].long(), torch.from_numpy(val.sample(i)[1])[None].long())
    return metrics.compute()


def crf_rows(root: Path, seeds: range, image_size: int, n: int) -> list[dict]:
    """V1/V2 of every seed on `n` val images, without and with the CRF: one row each, as experiment.table reads."""
    rows = []
    for name in CRF_VERSIONS:
        for label, post in ((name, None), (f"{name} + CRF", crf_refine)):
            for seed in seeds:
                model = load_for_prediction(root / name / f"seed{seed}" / "last.pth", build_model)[0]
                val = SyntheticContext(n, image_size=image_size, seed=seed, split="val")
                start = time.perf_counter()
                rows.append({"variant": label, "seed": seed, **evaluate(model, val, post),
                             "seconds": time.perf_counter() - start})
    return rows


def versions_figure(root: Path, path: Path, seed: int, image_size: int) -> Path:
    models = {v.name: load_for_prediction(root / v.name / f"seed{seed}" / "last.pth", build_model)[0]
              for v in variants(image_size)}
    cpu = torch.device("cpu")
    columns = {}
    for name, m in models.items():
        columns[name] = lambda image, m=m: predict_mask(m, image, cpu)
        if name in CRF_VERSIONS:
            columns[f"{name.split()[0]} + CRF"] = lambda image, m=m: predict_mask(m, image, cpu, postprocess=crf_refine)
    val = SyntheticContext(3, image_size=image_size, seed=seed, split="val")
    return experiment.prediction_grid(val, columns, path, title=f"DeepLab versions on context val images (seed {seed})")


def main(argv: list[str] | None = None) -> tuple[list[dict], list[dict]]:
    parser = experiment.get_args_parser(__doc__, HERE.name, QUICK, FULL)
    parser.add_argument("--crf-images", type=int, default=40, help="val images the CRF is measured on (default: 40)")
    args = parser.parse_args(argv)
    size, images, epochs, batch = experiment.budget_values(args, QUICK, FULL)
    if args.crf_images < 1:
        raise UserError(f"--crf-images must be at least 1, got {args.crf_images}")
    base = ["--data", "synthetic", "--synthetic-task", "context", "--backbone", "light", "--output-stride",
            str(OUTPUT_STRIDE), "--image-size", str(size), "--synthetic-size", str(images), "--epochs", str(epochs),
            "-b", str(batch), "--opt", "adamw", "--lr", str(LR), "--device", args.device, "--print-freq", "100"]
    start = time.perf_counter()
    rows = experiment.run(train_main, variants(size), range(args.seeds), base, args.output_dir)
    for row in rows:
        row["dot_iou"] = sum(row["iou"][k] for k in DOTS) / len(DOTS)
    crf = crf_rows(args.output_dir, range(args.seeds), size, args.crf_images)
    print(f"\n{experiment.provenance(sys.argv[1:] if argv is None else argv, time.perf_counter() - start)}\n")
    print(experiment.table(rows, {"miou": "mIoU", "boundary_iou": "boundary IoU (2 px)",
                                  "dot_iou": "dot_a/dot_b IoU (context)"}))
    print(f"\nCRF ({CRFParams()}) on {args.crf_images} val images per seed; time / run is the evaluation's:\n")
    print(experiment.table(crf, {"miou": "mIoU", "boundary_iou": "boundary IoU (2 px)"}))
    experiment.plot(rows, "miou", "mIoU (final epoch, val)", args.assets / "compare.png",
                    title=f"DeepLab ablation, stride 8, {size} px context data, {args.seeds} seeds")
    versions_figure(args.output_dir, args.assets / "versions.png", seed=0, image_size=size)
    return rows, crf


if __name__ == "__main__":
    cli_main(main)
