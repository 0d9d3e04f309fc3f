"""Scratch vs freeze vs features vs finetune on a few-shot target, same budget (notes: fine-tuning suits small data).

    python 08_transfer/compare.py                          # pretrain on the synthetic source task, then compare
    python 08_transfer/compare.py --source runs/08_transfer_compare/source/best.pth --seeds 0 1 2 --update-readme

The source model (--model, trained from scratch on the six source shapes, or --source CHECKPOINT) is transferred to the
four target shapes it never saw, with --shots training images per class. Every method gets the same epochs, batch
size, head learning rate and seeds (each seed draws its own target images and initialisation). Per epoch time is the
median gap between consecutive end-of-epoch TensorBoard events (training + evaluation, without set-up and feature
extraction). On a shared CPU run it with OMP_NUM_THREADS=1 (see README).
"""
import argparse
import datetime
import os
import platform
import re
import statistics
import sys
from pathlib import Path

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common.errors import UserError, cli_main  # noqa: E402
import train  # noqa: E402

README = Path(__file__).resolve().parent / "README.md"
BEGIN, END = "<!-- compare:begin -->", "<!-- compare:end -->"


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18", choices=train.MODELS)
    parser.add_argument("--source", default=None, help="a trained source checkpoint (default: pretrain one here)")
    parser.add_argument("--source-size", type=int, default=2400, help="source task training images (default: 2400)")
    parser.add_argument("--source-epochs", type=int, default=8, help="source pretraining epochs (default: 8)")
    parser.add_argument("--source-lr", type=float, default=0.02, help="source pretraining lr (default: 0.02)")
    parser.add_argument("--epochs", type=int, default=15, help="target epochs, every method (default: 15)")
    parser.add_argument("--shots", type=int, default=20, help="target training images per class (default: 20)")
    parser.add_argument("--val-per-class", type=int, default=25, help="target val images per class (default: 25)")
    parser.add_argument("-b", "--batch-size", type=int, default=16, help="target batch size (default: 16)")
    parser.add_argument("--lr", type=float, default=0.01, help="target lr (the head's, for finetune) (default: 0.01)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="target draws/initialisations (default: 0 1 2)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | ... (default: %(default)s)")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/08_transfer_compare"))
    parser.add_argument("--update-readme", action="store_true", help=f"write the table into {README.name}")
    return parser


def epoch_seconds(run_dir: Path) -> float:
    """Median wall time between consecutive end-of-epoch `test_loss` events."""
    times = [e.wall_time for e in EventAccumulator(str(run_dir)).Reload().Scalars("test_loss")]
    gaps = [b - a for a, b in zip(times, times[1:])]
    return statistics.median(gaps) if gaps else float("nan")


def rows(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    warm = max(args.epochs // 4, 1)
    stages = len(train.STAGES[args.model])
    k = train.frozen_stages(train.get_args_parser().parse_args(["--model", args.model, "--method", "finetune"]), 0)
    return [("scratch", ["--method", "scratch"]),
            ("freeze (Transfer Learning)", ["--method", "freeze"]),
            ("features (Extract Feature Vector)", ["--method", "features"]),
            (f"finetune (Fine-tuning, {k}/{stages} stages frozen)", ["--method", "finetune"]),
            (f"finetune + --freeze-epochs {warm} (冻结训练)", ["--method", "finetune", "--freeze-epochs", str(warm)])]


def main(argv: list[str] | None = None) -> str:
    args = get_args_parser().parse_args(argv)
    if args.epochs < 2:
        raise UserError("--epochs must be at least 2 (per-epoch time is a gap between epochs)")
    common = ["--model", args.model, "--device", args.device, "--print-freq", "1000000"]
    source, source_note = args.source, f"given checkpoint `{args.source}`"
    if source is None:
        out = args.output_dir / "source"
        summary = train.main([*common, "--synthetic-task", "source", "--method", "scratch",
                              "--synthetic-size", str(args.source_size), "--epochs", str(args.source_epochs),
                              "-b", str(min(32, args.source_size)), "--lr", str(args.source_lr),
                              "--output-dir", str(out), "--overwrite"])
        source = str(out / "best.pth")
        source_note = (f"{args.model} trained from scratch on the source task ({args.source_size} images of 6 shapes, "
                       f"{args.source_epochs} epochs): source val accuracy {summary['best_metric']:.3f}")
    results: dict[str, list[dict]] = {}
    for seed in args.seeds:
        for name, flags in rows(args):
            out = args.output_dir / f"seed{seed}" / re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")
            weights = [] if "scratch" in flags else ["--weights", source]
            summary = train.main([*common, *flags, *weights, "--epochs", str(args.epochs), "--shots", str(args.shots),
                                  "--val-per-class", str(args.val_per_class), "-b", str(args.batch_size),
                                  "--lr", str(args.lr), "--seed", str(seed), "--output-dir", str(out),
                                  "--overwrite", "--feature-cache", str(args.output_dir / "feature_cache")])
            cache = summary.get("feature_cache", {})
            results.setdefault(name, []).append({
                "accuracy": summary["metrics"]["accuracy"], "trainable": summary["trainable_params"],
                "epoch_s": epoch_seconds(out), "once_s": cache.get("seconds", 0.0)})
    table = render(args, results, source_note)
    print(table)
    if args.update_readme:
        text = README.read_text()
        if BEGIN not in text or END not in text:
            raise UserError(f"{README} has no {BEGIN} ... {END} block to replace")
        head, rest = text.split(BEGIN, 1)
        README.write_text(f"{head}{BEGIN}\n{table}\n{END}{rest.split(END, 1)[1]}")
    return table


def render(args: argparse.Namespace, results: dict[str, list[dict]], source_note: str) -> str:
    freeze = statistics.mean(r["epoch_s"] for r in results["freeze (Transfer Learning)"])
    lines = ["| method | trainable params | val accuracy, mean (per seed) | s / epoch | speed-up vs freeze | one-off |",
             "| --- | ---: | --- | ---: | ---: | ---: |"]
    for name, runs in results.items():
        accs = [r["accuracy"] for r in runs]
        per_epoch = statistics.mean(r["epoch_s"] for r in runs)
        once = statistics.mean(r["once_s"] for r in runs)
        lines.append(f"| {name} | {runs[-1]['trainable']:,} | **{statistics.mean(accs):.3f}** "
                     f"({', '.join(f'{a:.3f}' for a in accs)}) | {per_epoch:.2f} | {freeze / per_epoch:.1f}× | "
                     + (f"{once:.1f} s extraction" if once else "") + " |")
    argv = " ".join(sys.argv[1:]) if Path(sys.argv[0]).name == "compare.py" else ""
    env = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in os.environ else ""
    cpu = (f"{os.cpu_count()}-core {platform.machine()} CPU with {torch.get_num_threads()} torch thread(s), no GPU"
           if args.device == "cpu" else args.device)
    lines += ["", f"Source: {source_note}. Target: {args.shots} images per class of 4 unseen shapes, "
              f"{args.val_per_class * 4} val images; {args.epochs} epochs, batch {args.batch_size}, lr {args.lr}, "
              f"seeds {args.seeds}. Accuracy after the last epoch.",
              f"Measured with `{f'{env}python 08_transfer/compare.py {argv}'.strip()}` on a {cpu}, "
              f"{datetime.date.today().isoformat()}."]
    return "\n".join(lines)


if __name__ == "__main__":
    cli_main(main)
