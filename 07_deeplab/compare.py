"""Train the four DeepLab versions with the same budget on the synthetic set and print the README's table.

    python 07_deeplab/compare.py                                    # resnet18 backbone, each version's output stride
    python 07_deeplab/compare.py --epochs 2 --synthetic-size 40     # a quick look

Every run gets the same data, seed, crop, batch size, epochs and learning rate; only `--model` changes (so V1/V2 run at
output stride 8 and V3/V3+ at 16, as published, unless `--output-stride` is given). Mult-adds are counted at 513×513.
"""
import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
import train  # noqa: E402
from common.complexity import count_params_and_macs  # noqa: E402
from common.errors import cli_main  # noqa: E402
from common.synthetic import SyntheticSegmentation  # noqa: E402
from model import BACKBONES, MODELS, build_model  # noqa: E402

BAR = SyntheticSegmentation.CLASSES.index("bar")  # the thin class (1-3 px lines): where a decoder should help


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--backbone", default="resnet18", choices=BACKBONES)
    parser.add_argument("--output-stride", type=int, choices=(8, 16), default=None)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--synthetic-size", type=int, default=1000)
    parser.add_argument("-b", "--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--output-dir", type=Path, default=Path("runs/07_deeplab/compare"))
    args = parser.parse_args(argv)
    rows = []
    for name in args.models:
        start = time.perf_counter()
        flags = ["--data", "synthetic", "--model", name, "--backbone", args.backbone, "--epochs", str(args.epochs),
                 "--synthetic-size", str(args.synthetic_size), "-b", str(args.batch_size), "--lr", str(args.lr),
                 "--output-dir", str(args.output_dir / name), "--overwrite", "--print-freq", "50", "--device", "cpu"]
        if args.output_stride:
            flags += ["--output-stride", str(args.output_stride)]
        summary = train.main(flags)
        model = build_model(name, 6, backbone=args.backbone, output_stride=args.output_stride)
        cost = count_params_and_macs(model, 513)
        rows.append({"model": name, "output_stride": model.output_stride, "miou": summary["metrics"]["miou"],
                     "best_miou": summary["best_metric"], "bar_iou": summary["metrics"]["iou"][BAR],
                     "seconds": time.perf_counter() - start, **cost})
    print("\n| model | backbone | OS | params | mult-adds 513² | final mIoU | best mIoU | bar IoU | time |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['model']} | {args.backbone} | {r['output_stride']} | {r['params'] / 1e6:.2f}M "
              f"| {r['macs'] / 1e9:.1f}G | {r['miou']:.3f} | {r['best_miou']:.3f} | {r['bar_iou']:.3f} "
              f"| {r['seconds'] / 60:.1f} min |")
    return rows


if __name__ == "__main__":
    cli_main(main)
