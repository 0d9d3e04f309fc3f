"""Accuracy per mult-add, the notes' point about MobileNet, measured on the synthetic shapes.

    python 05_mobilenet/compare.py --quick           # the README table: 32 and 48 px, 3 seeds, < 10 min on a 2-core CPU
    python 05_mobilenet/compare.py --device cuda     # larger: 64 and 128 px, more images and epochs, one GPU
    python 05_mobilenet/compare.py --costs --image-size 224 --batch-size 8 --threads 1   # cost and step-time table

Families (each trained with the same images, steps and optimizer, every point with every seed):
- V1 at two resolutions ρ (the two `--image-size` values), width multiplier α ∈ {0.25, 0.5, 0.75, 1.0}: how accuracy
  falls as α² and ρ² shrink the mult-adds;
- V1 "full conv" at the first resolution: the same layout with standard 3×3 convs instead of depthwise + pointwise (the
  V1 paper's Table 4), ~8× the mult-adds: what separability costs in accuracy at the same α, and what the mult-adds
  buy when spent on width instead;
- V2 and V2 with a ReLU6 after each projection (the V2 paper's linear-bottleneck ablation: ReLU destroys information in
  low-dimensional features) at the first resolution.
Prints the markdown table (mult-adds from `count_params_and_macs` at the variant's resolution, parameters, final-epoch
val accuracy mean ± sd) with its provenance line and writes `assets/accuracy_vs_macs.png`.
"""
from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from common import experiment  # noqa: E402
from common.complexity import count_params_and_macs  # noqa: E402
from common.errors import UserError, cli_main  # noqa: E402
from common.experiment import Variant  # noqa: E402
from common.synthetic import SyntheticShapes  # noqa: E402
from model import build_model  # noqa: E402
from train import main as train_main  # noqa: E402

NUM_CLASSES = len(SyntheticShapes.SHAPES)  # --data synthetic's classes: the head the mult-adds are counted with
WIDTHS = (0.25, 0.5, 0.75, 1.0)
# the train.py flag of each ablation → the constructor option it sets
ABLATIONS = {"--full-conv": {"separable": False}, "--relu6-projection": {"linear_bottleneck": False}}
# resolutions, training images, epochs, batch, lr: the README's CPU budget and the GPU one. AdamW without augmentation
# for both: at the CPU budget, SGD (lr 0.02 and 0.1) and flips + shifts left every separable net at the loss plateau
# (README, "Accuracy per mult-add")
QUICK = {"sizes": (32, 48), "images": 1152, "epochs": 4, "batch": 32, "lr": 0.005}
FULL = {"sizes": (64, 128), "images": 8000, "epochs": 20, "batch": 64, "lr": 0.005}
COST_CONFIGS = [("mobilenet_v1", 1.0), ("mobilenet_v1", 0.5), ("mobilenet_v2", 1.0), ("mobilenet_v2", 0.5)]


@dataclass(frozen=True)
class Point:
    """One trained configuration: its family (a line in the figure), model, α, input size and ablation flag."""
    family: str
    model: str
    width: float
    size: int
    ablation: str | None = None

    @property
    def name(self) -> str:
        return f"{self.family} α={self.width}"

    def variant(self) -> Variant:
        """Only what differs between points; the budget is the shared base flags."""
        return Variant(self.name, ["--model", self.model, "--width-mult", str(self.width), "--image-size",
                                   str(self.size), *([self.ablation] if self.ablation else [])])

    @functools.cache  # the table, the figure and the tests ask for the same 14 counts
    def cost(self) -> dict[str, int]:
        """Parameters and mult-adds of this point's model at its own resolution (built on the meta device)."""
        kwargs = ABLATIONS[self.ablation] if self.ablation else {}
        with torch.device("meta"):
            model = build_model(self.model, NUM_CLASSES, width_mult=self.width, **kwargs)
        return count_params_and_macs(model, self.size)


def points(sizes: tuple[int, int]) -> list[Point]:
    """The families of the module docstring; the ablations sit at the first (cheaper) resolution: full conv at α = 0.25,
    whose mult-adds are separable V1's at α = 0.75 (the same cost spent on another layer type), the V2 pair at 0.5."""
    low, high = sizes
    return [*(Point(f"V1 {low}px", "mobilenet_v1", a, low) for a in WIDTHS),
            *(Point(f"V1 {high}px", "mobilenet_v1", a, high) for a in WIDTHS),
            Point(f"V1 full conv {low}px", "mobilenet_v1", 0.25, low, "--full-conv"),
            Point(f"V2 {low}px", "mobilenet_v2", 0.5, low),
            Point(f"V2 + ReLU6 {low}px", "mobilenet_v2", 0.5, low, "--relu6-projection")]


def base_flags(budget: dict[str, Any], device: str) -> list[str]:
    """The flags every variant trains with: the same images, steps and optimizer settings."""
    return ["--data", "synthetic", "--synthetic-size", str(budget["images"]), "--epochs", str(budget["epochs"]),
            "-b", str(budget["batch"]), "--opt", "adamw", "--lr", str(budget["lr"]), "--no-augment", "--device", device,
            "--print-freq", "1000"]


def cost_table(rows: list[dict[str, Any]], pts: list[Point], cost: dict[str, dict[str, int]]) -> str:
    """Markdown: variant, mult-adds and parameters at its resolution (`cost` by name), accuracy mean ± sd, seeds, time
    per run."""
    accuracy, seconds = experiment.summarise(rows, "accuracy"), experiment.summarise(rows, "seconds")
    lines = ["| variant | mult-adds | parameters | accuracy | seeds | time / run |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for p in pts:
        lines.append(f"| {p.name} | {cost[p.name]['macs'] / 1e6:.2f}M | {cost[p.name]['params'] / 1e6:.2f}M | "
                     f"{experiment.mean_sd(accuracy[p.name])} | {len(seconds[p.name])} | "
                     f"{statistics.mean(seconds[p.name]):.0f} s |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], pts: list[Point], cost: dict[str, dict[str, int]], path: Path, title: str) -> Path:
    """Accuracy vs mult-adds (log x): a line per family through its α values, error bars ± sd over seeds."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    accuracy = experiment.summarise(rows, "accuracy")
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=120)
    markers = iter("osD^vP")
    for family in dict.fromkeys(p.family for p in pts):
        members = [p for p in pts if p.family == family]
        stats = [experiment.mean_and_sd(accuracy[p.name]) for p in members]
        macs = [cost[p.name]["macs"] for p in members]
        ax.errorbar(macs, [s[0] for s in stats], yerr=[s[1] for s in stats], marker=next(markers), capsize=3,
                    label=family)
        for x, p, (mean, _, _) in zip(macs, members, stats):
            ax.annotate(f"α={p.width}", (x, mean), fontsize=7,
                        xytext=(4, -9), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("mult-adds per image (log scale)")
    ax.set_ylabel("val accuracy (final epoch)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return experiment.save_figure(fig, path)


def step_time(model: nn.Module, batch_size: int, image_size: int, rounds: int) -> float:
    """Median seconds of one SGD training step (forward, backward, update) after one warm-up step."""
    x, y = torch.randn(batch_size, 3, image_size, image_size), torch.randint(0, 1000, (batch_size,))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train()
    times = []
    for _ in range(rounds + 1):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def costs(image_size: int, batch_size: int, rounds: int, threads: int) -> list[dict[str, Any]]:
    """The V1 vs V2 table: parameters, mult-adds and the measured CPU training-step time (1000 classes)."""
    torch.manual_seed(0)
    rows = []
    for name, width in COST_CONFIGS:
        model = build_model(name, 1000, width_mult=width)
        cost = count_params_and_macs(model, image_size)
        rows.append({"model": name, "width_mult": width, **cost,
                     "step_s": step_time(model, batch_size, image_size, rounds)})
    print(f"CPU, {threads} thread(s), batch {batch_size}, {image_size}x{image_size}, "
          f"median of {rounds} training steps, torch {torch.__version__}")
    print(f"| model | α | parameters | mult-adds at {image_size} | step time (ms) |\n|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['width_mult']} | {r['params'] / 1e6:.2f}M | {r['macs'] / 1e6:.0f}M | "
              f"{r['step_s'] * 1e3:.0f} |")
    return rows


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--costs", action="store_true",
                        help="print the parameters / mult-adds / CPU step-time table instead of training")
    parser.add_argument("--quick", action="store_true", help="the README's CPU budget")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 … N-1 per variant (default: 3)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default: cpu)")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/05_mobilenet/compare"),
                        help="one run folder per variant and seed (default: %(default)s)")
    parser.add_argument("--assets", type=Path, default=HERE / "assets", help="where the PNG goes")
    parser.add_argument("--image-size", type=int, nargs="+", default=None, metavar="N",
                        help=f"the two resolutions ρ (default: {QUICK['sizes']} with --quick, else {FULL['sizes']}); "
                             "with --costs one size (default: 224)")
    parser.add_argument("--synthetic-size", type=int, default=None,
                        help=f"training images (default: {QUICK['images']} with --quick, else {FULL['images']})")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"training epochs of every variant "
                             f"(default: {QUICK['epochs']} with --quick, else {FULL['epochs']})")
    parser.add_argument("-b", "--batch-size", type=int, default=None,
                        help=f"images per training step "
                             f"(default: {QUICK['batch']} with --quick, else {FULL['batch']}; --costs: 8)")
    parser.add_argument("--lr", type=float, default=None, help=f"AdamW learning rate (default: {QUICK['lr']})")
    parser.add_argument("--rounds", type=int, default=5, help="--costs: timed steps per model (default: 5)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default: 1: on a shared CPU two threads spin-waiting for each other "
                             "made a training step 10-30× slower)")
    return parser


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = get_args_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.costs:
        sizes = args.image_size or [224]
        if len(sizes) != 1:
            raise UserError(f"--costs takes one --image-size, got {sizes}")
        return costs(sizes[0], args.batch_size or 8, args.rounds, args.threads)
    defaults = QUICK if args.quick else FULL
    given = {"sizes": tuple(args.image_size) if args.image_size else None, "images": args.synthetic_size,
             "epochs": args.epochs, "batch": args.batch_size, "lr": args.lr}
    budget = {k: v if v is not None else defaults[k] for k, v in given.items()}
    if len(budget["sizes"]) != 2 or min(budget["sizes"]) < 32 or budget["sizes"][0] == budget["sizes"][1]:
        raise UserError(f"--image-size takes two different resolutions of at least 32, got {list(budget['sizes'])}")
    for flag, value in (("--seeds", args.seeds), ("--epochs", budget["epochs"])):
        if value < 1:  # before the first variant trains, not after some have
            raise UserError(f"{flag} must be at least 1, got {value}")
    pts = points(budget["sizes"])
    start = time.perf_counter()
    rows = experiment.run(train_main, [p.variant() for p in pts], range(args.seeds),
                          base_flags(budget, args.device), args.output_dir)
    print(f"\n{experiment.provenance(sys.argv[1:] if argv is None else argv, time.perf_counter() - start)}\n")
    cost = {p.name: p.cost() for p in pts}
    print(cost_table(rows, pts, cost))
    plot(rows, pts, cost, args.assets / "accuracy_vs_macs.png",
         title=f"MobileNet on synthetic shapes: accuracy vs mult-adds ({args.seeds} seeds, ± sd)")
    return rows


if __name__ == "__main__":
    cli_main(main)
