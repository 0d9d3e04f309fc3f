"""The notes' 辅助分类器 experiment: train the same GoogLeNet with and without its two aux heads, same data, seed and budget.

    python 09_googlenet/aux_experiment.py --epochs 8 --synthetic-size 2000 --seeds 0 1

Prints one Markdown row per run (the README's table): final and best validation accuracy, final validation loss (main
head only, so the two are comparable) and training time. Any extra flags go to train.py unchanged.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train import main as train_main  # noqa: E402


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--synthetic-size", type=int, default=2000)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args, passthrough = parser.parse_known_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for aux in ("--aux", "--no-aux"):
                start = time.perf_counter()
                summary = train_main(["--data", "synthetic", "--synthetic-size", str(args.synthetic_size),
                                      "--image-size", str(args.image_size), "--epochs", str(args.epochs),
                                      "--seed", str(seed), aux, "--output-dir", f"{tmp}/{seed}{aux}", *passthrough])
                rows.append({"aux": aux == "--aux", "seed": seed, "accuracy": summary["metrics"]["accuracy"],
                             "best": summary["best_metric"], "loss": summary["metrics"]["loss"],
                             "seconds": time.perf_counter() - start})
    print("| aux heads | seed | final val accuracy | best val accuracy | final val loss | train + eval time (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {'yes' if r['aux'] else 'no'} | {r['seed']} | {r['accuracy']:.3f} | {r['best']:.3f} | "
              f"{r['loss']:.3f} | {r['seconds']:.0f} |")
    return rows


if __name__ == "__main__":
    main()
