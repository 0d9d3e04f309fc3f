"""FCN-32s vs 16s vs 8s on the synthetic set (thin bars and small objects) with the same budget: does 跳级结构 help?

    python 06_fcn/compare.py                                   # light backbone, CPU, a few minutes per model
    python 06_fcn/compare.py --epochs 30 --synthetic-size 2000 --device cuda

Each model is trained by train.py with identical flags and seed, so the only difference is the skips. Prints a markdown
table: parameters, mIoU, pixel accuracy, the IoU of the thin `bar` class, and the training time.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common.errors import UserError, cli_main  # noqa: E402
from common.synthetic import SyntheticSegmentation  # noqa: E402
from model import BACKBONES, MODELS, build_model  # noqa: E402
from train import main as train_main  # noqa: E402
BAR = SyntheticSegmentation.CLASSES.index("bar")  # the thin class: 1-3 px wide lines


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--backbone", default="light", choices=tuple(BACKBONES))
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--synthetic-size", type=int, default=4000)
    parser.add_argument("-b", "--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/06_fcn/compare"))
    return parser


def main(argv: list[str] | None = None) -> list[dict]:
    args = get_args_parser().parse_args(argv)
    if len(set(args.models)) != len(args.models):
        raise UserError(f"--models lists a model twice: {args.models}")
    rows = []
    for name in args.models:
        start = time.perf_counter()
        summary = train_main(["--data", "synthetic", "--model", name, "--backbone", args.backbone,
                              "--epochs", str(args.epochs), "--synthetic-size", str(args.synthetic_size),
                              "-b", str(args.batch_size), "--lr", str(args.lr), "--seed", str(args.seed),
                              "--device", args.device, "--print-freq", "50", "--output-dir", str(args.output_dir / name),
                              "--overwrite"])
        metrics = summary["metrics"]
        rows.append({"model": name, "params": sum(p.numel() for p in build_model(name, 6, backbone=args.backbone)
                                                  .parameters()),
                     "miou": metrics["miou"], "pixel_accuracy": metrics["pixel_accuracy"], "bar_iou": metrics["iou"][BAR],
                     "iou": metrics["iou"], "seconds": time.perf_counter() - start})
    print(f"\n{args.backbone} backbone, {args.epochs} epochs x {args.synthetic_size} images, batch {args.batch_size}, "
          f"lr {args.lr}, seed {args.seed}, {args.device} (final epoch, val set)\n")
    print("| model | parameters | mIoU | pixel acc. | bar IoU | time |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['model']} | {r['params']:,} | {r['miou']:.3f} | {r['pixel_accuracy']:.3f} | {r['bar_iou']:.3f} | "
              f"{r['seconds']:.0f} s |")
    return rows


if __name__ == "__main__":
    cli_main(main)
