"""The notes' 辅助分类器 at 96 px: with and without the two aux heads, with and without BatchNorm, same budget.

    OMP_NUM_THREADS=1 nice python 09_googlenet/compare.py --quick   # the README run: 3 seeds, ~6 min on 2 CPUs
    python 09_googlenet/compare.py --device cuda                    # the default budget, sized for one GPU

The notes give the aux heads' first job as 避免梯度消失 (getting gradient to the early layers). That needs a net in which
the gradient can vanish: the paper's own GoogLeNet had no BatchNorm (`batch_norm=False`, initialised as the paper's
Caffe model), so every combination of {aux heads, none} × {BN, no BN} is trained here on the synthetic shapes at 96 px
(4a and 4d see 6×6 maps, not the 2×2 of 32 px). Every variant gets the same images, steps, batch, optimizer (SGD,
momentum 0.9, weight decay 1e-4, or `--opt adamw`), cosine LR and seeds. Every `--log-every` steps it records the L2
norm of the gradient reaching conv1's weight, from the main loss alone and from the whole training loss (main + 0.3 ×
each aux), and the validation accuracy of each head (the aux heads read with BN and dropout in eval mode, like the
main one). Prints the markdown table (mean ± sd over seeds) under its provenance line; writes `assets/grad_norm.png`
and `assets/head_accuracy.png`.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import experiment, schedule  # noqa: E402
from common.classification import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from common.cli import resolve_device  # noqa: E402
from common.errors import UserError, cli_main  # noqa: E402
from common.runtime import seed_everything  # noqa: E402
from common.synthetic import SyntheticShapes  # noqa: E402
from common.tensor_loader import TensorLoader  # noqa: E402
from model import GoogLeNetLoss, build_model  # noqa: E402

VARIANTS = {"BN + aux": {"batch_norm": True, "aux_logits": True}, "BN, no aux": {"batch_norm": True, "aux_logits": False},
            "no BN + aux": {"batch_norm": False, "aux_logits": True},
            "no BN, no aux": {"batch_norm": False, "aux_logits": False}}
HEADS = ("main", "aux1", "aux2")


@dataclass(frozen=True)
class Budget:
    """What every variant gets: image side, training and validation images, steps, batch, LR, logging interval, the
    number of shape classes and the optimizer (SGD momentum 0.9 / AdamW, weight decay 1e-4 / 0.05)."""
    image_size: int
    images: int
    val_images: int
    steps: int
    batch: int
    lr: float
    log_every: int
    classes: int = 10
    opt: str = "sgd"


# QUICK: 12 runs in ~6 min of a shared 2-core CPU with OMP_NUM_THREADS=1 (two threads on a loaded machine: 3× slower)
QUICK = Budget(image_size=96, images=320, val_images=40, steps=40, batch=8, lr=0.01, log_every=8)
FULL = Budget(image_size=96, images=8000, val_images=1000, steps=3000, batch=64, lr=0.01, log_every=100)


def conv1_grad_norms(model: nn.Module, criterion: GoogLeNetLoss, images: torch.Tensor, labels: torch.Tensor
                     ) -> tuple[torch.Tensor, dict[str, float]]:
    """One forward and backward (gradients left in `.grad` for the optimizer): the training loss and the L2 norms of
    d(loss)/d(conv1 weight) for the main loss alone ("main") and for the whole training loss ("total"). The difference
    is what the aux heads deliver to the first layer; without aux heads the two are the same number."""
    weight = model.conv1.conv.weight
    output = model(images)
    loss = criterion(output, labels)
    if isinstance(output, tuple):
        main = torch.autograd.grad(F.cross_entropy(output[0], labels), weight, retain_graph=True)[0].norm().item()
    loss.backward()
    total = weight.grad.norm().item()
    return loss.detach(), {"main": main if isinstance(output, tuple) else total, "total": total}


@torch.no_grad()
def head_accuracies(model: nn.Module, loader: TensorLoader) -> dict[str, float]:
    """Validation accuracy of the main head and, when the model has them, of aux1 and aux2 (NaN otherwise). Every layer
    is in eval mode (BN running statistics, no dropout); only GoogLeNet's own `training` flag is set, which is what
    makes its forward return the aux logits too."""
    was_training = model.training
    model.eval()
    model.training = True
    correct, seen = {}, 0
    for images, labels in loader:
        output = model(images)
        for head, logits in zip(HEADS, output if isinstance(output, tuple) else (output,)):
            correct[head] = correct.get(head, 0) + (logits.argmax(1) == labels).sum().item()
        seen += len(labels)
    model.train(was_training)
    return {head: correct[head] / seen if head in correct else math.nan for head in HEADS}


def train_run(kwargs: dict[str, bool], seed: int, budget: Budget, train: TensorLoader, val: TensorLoader,
              device: torch.device) -> dict[str, Any]:
    """Train one variant with one seed for `budget.steps` steps: the final accuracies, the mean over the logged steps
    of log10 of conv1's gradient norms (the norms span orders of magnitude, so a geometric mean), their ratio (how much
    the aux heads add to what reaches conv1) and the per-log-step history the figures draw. A non-finite loss stops
    the run there (`diverged_at`) instead of training on NaNs; its accuracies are then NaN."""
    seed_everything(seed)
    model = build_model("googlenet", budget.classes, **kwargs).to(device).train()
    optimizer = (torch.optim.AdamW(model.parameters(), lr=budget.lr, weight_decay=0.05) if budget.opt == "adamw" else
                 torch.optim.SGD(model.parameters(), lr=budget.lr, momentum=0.9, weight_decay=1e-4))
    scheduler = schedule.cosine_lr(optimizer, budget.steps)
    criterion = GoogLeNetLoss()
    history, diverged_at, step, epoch = [], None, 0, 0
    while step < budget.steps and diverged_at is None:
        train.set_epoch(epoch)
        for images, labels in train:
            optimizer.zero_grad(set_to_none=True)
            if step % budget.log_every == 0:
                loss, norms = conv1_grad_norms(model, criterion, images, labels)
                history.append({"step": step, "loss": loss.item(), "grad_main": norms["main"],
                                "grad_total": norms["total"]})
            else:
                loss = criterion(model(images), labels)
                loss.backward()
            if not torch.isfinite(loss):
                diverged_at = step
                break
            optimizer.step()
            scheduler.step()
            step += 1
            if step % budget.log_every == 0 or step == budget.steps:
                history.append({"step": step, **{f"acc_{h}": a for h, a in head_accuracies(model, val).items()}})
            if step == budget.steps:
                break
        epoch += 1
    final = {h: history[-1][f"acc_{h}"] for h in HEADS} if diverged_at is None else dict.fromkeys(HEADS, math.nan)
    logs = {key: [math.log10(h[key]) if h[key] > 0 else math.nan for h in history if key in h]
            for key in ("grad_main", "grad_total")}
    means = {f"log10_{key}": sum(v) / len(v) for key, v in logs.items()}
    return {**{f"acc_{h}": a for h, a in final.items()}, "diverged_at": diverged_at, "history": history, **means,
            "grad_ratio": 10 ** (means["log10_grad_total"] - means["log10_grad_main"]),
            "grad0_main": history[0]["grad_main"]}


def series(rows: list[dict[str, Any]], variant: str, key: str) -> tuple[list[int], list[list[float]]]:
    """Steps at which `key` was logged for `variant`, and its value per seed at each (NaN where a run stopped early)."""
    runs = [{h["step"]: h[key] for h in row["history"] if key in h} for row in rows if row["variant"] == variant]
    steps = sorted(set().union(*runs))
    return steps, [[run.get(s, math.nan) for run in runs] for s in steps]


def figures(rows: list[dict[str, Any]], assets: Path, title: str, classes: int = 10) -> list[Path]:
    """grad_norm.png: conv1's gradient norm vs step (log y), mean over seeds with the seeds' range shaded, solid for the
    whole loss and dashed for the main loss alone; head_accuracy.png: one panel per variant, each head's val accuracy
    vs step (mean ± sd over seeds) against the chance level 1/classes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    assets.mkdir(parents=True, exist_ok=True)
    colours = dict(zip(VARIANTS, ("#1f77b4", "#2ca02c", "#d62728", "#ff7f0e")))
    fig, ax = plt.subplots(figsize=(7.5, 4.4), dpi=120)
    for variant, colour in colours.items():
        for key, style, what in (("grad_total", "-", "training loss"), ("grad_main", "--", "main loss only")):
            if key == "grad_main" and not VARIANTS[variant]["aux_logits"]:
                continue  # without aux heads the main loss is the training loss: the same curve
            steps, values = series(rows, variant, key)
            v = np.log10(np.asarray(values))
            ax.plot(steps, 10 ** np.nanmean(v, 1), style, color=colour, label=f"{variant}: {what}")
            ax.fill_between(steps, 10 ** np.nanmin(v, 1), 10 ** np.nanmax(v, 1), color=colour, alpha=0.12)
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("‖∂loss/∂W_conv1‖₂ (geometric mean over seeds)")
    ax.set_title(f"Gradient reaching conv1 — {title}", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(assets / "grad_norm.png")
    plt.close(fig)

    fig, axes = plt.subplots(1, len(VARIANTS), figsize=(3.2 * len(VARIANTS), 3.4), dpi=120, sharey=True)
    for ax, variant in zip(axes, VARIANTS):
        for head, colour in zip(HEADS, ("#1f3b5c", "#d98b2b", "#8c4fb0")):
            steps, values = series(rows, variant, f"acc_{head}")
            v = np.asarray(values)
            if np.isnan(v).all():
                continue  # no aux heads in this variant
            mean, sd = np.nanmean(v, 1), np.nanstd(v, 1, ddof=1) if v.shape[1] > 1 else np.zeros(len(steps))
            ax.plot(steps, mean, marker=".", color=colour, label=head)
            ax.fill_between(steps, mean - sd, mean + sd, color=colour, alpha=0.15)
        ax.axhline(1 / classes, color="grey", ls=":", label="chance")
        ax.set_title(variant, fontsize=10)
        ax.set_xlabel("training step")
    axes[0].set_ylabel("val accuracy (mean ± sd over seeds)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Accuracy of each head — {title}", fontsize=10)
    fig.tight_layout()
    fig.savefig(assets / "head_accuracy.png")
    plt.close(fig)
    return [assets / "grad_norm.png", assets / "head_accuracy.png"]


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the README's CPU budget")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 … N-1 per variant (default: 3)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    parser.add_argument("--assets", type=Path, default=HERE / "assets", help="where the PNGs go")
    for field, what in (("image_size", "side of the synthetic images"), ("images", "training images"),
                        ("val_images", "validation images"), ("steps", "optimizer steps"), ("batch", "batch size"),
                        ("lr", "initial learning rate"), ("log_every", "steps between measurements"),
                        ("classes", "shape classes (chance accuracy 1/N)"),
                        ("opt", "optimizer: sgd (momentum 0.9, weight decay 1e-4) or adamw (weight decay 0.05)")):
        kind = {"lr": float, "opt": str}.get(field, int)
        parser.add_argument(f"--{field.replace('_', '-')}", type=kind, default=None,
                            choices=("sgd", "adamw") if field == "opt" else None,
                            help=f"{what} (default: {getattr(QUICK, field)} with --quick, else {getattr(FULL, field)})")
    return parser


def check_budget(budget: Budget, seeds: int) -> None:
    """Refuse a budget that could not run (or would loop forever: fewer images than one batch) before any training."""
    for name, value in (("--seeds", seeds), ("--steps", budget.steps), ("--batch", budget.batch),
                        ("--log-every", budget.log_every), ("--val-images", budget.val_images)):
        if value < 1:
            raise UserError(f"{name} must be at least 1, got {value}")
    if budget.images < budget.batch:
        raise UserError(f"--images ({budget.images}) must be at least --batch ({budget.batch}): no full batch to train")
    if budget.image_size < 15:
        raise UserError(f"--image-size must be at least 15 (GoogLeNet downsamples by 32), got {budget.image_size}")
    if not 2 <= budget.classes <= len(SyntheticShapes.SHAPES):
        raise UserError(f"--classes must be in [2, {len(SyntheticShapes.SHAPES)}], got {budget.classes}")
    if not budget.lr > 0:
        raise UserError(f"--lr must be > 0, got {budget.lr}")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = get_args_parser().parse_args(argv)
    defaults = QUICK if args.quick else FULL
    budget = replace(defaults, **{f: getattr(args, f) for f in defaults.__dataclass_fields__
                                  if getattr(args, f) is not None})
    check_budget(budget, args.seeds)
    device = resolve_device(args.device)
    start = time.perf_counter()
    rows = []
    for seed in range(args.seeds):  # the same images, order and flips for every variant of a seed
        shapes = {split: SyntheticShapes(n, image_size=budget.image_size, num_classes=budget.classes, seed=seed,
                                         split=split)
                  for split, n in (("train", budget.images), ("val", budget.val_images))}
        loaders = {split: TensorLoader(ds.data, ds.targets, budget.batch if split == "train" else 2 * budget.batch,
                                       train=split == "train", flip=split == "train", device=device, seed=seed,
                                       mean=IMAGENET_MEAN, std=IMAGENET_STD) for split, ds in shapes.items()}
        for variant, kwargs in VARIANTS.items():
            run_start = time.perf_counter()
            row = {"variant": variant, "seed": seed, **train_run(kwargs, seed, budget, loaders["train"],
                                                                 loaders["val"], device)}
            rows.append({**row, "seconds": time.perf_counter() - run_start})
            stopped = "" if row["diverged_at"] is None else f", loss not finite at step {row['diverged_at']}"
            losses = [f"{h['loss']:.2f}" for h in row["history"] if "loss" in h]
            print(f"{variant} seed {seed}: training loss {' → '.join(losses)}; val accuracy main {row['acc_main']:.3f}, "
                  f"aux1 {row['acc_aux1']:.3f}, aux2 "
                  f"{row['acc_aux2']:.3f}, conv1 grad at step 0: main {row['grad0_main']:.2e}, log10 mean main "
                  f"{row['log10_grad_main']:.2f} / total {row['log10_grad_total']:.2f}{stopped}", flush=True)
    rows.sort(key=lambda r: list(VARIANTS).index(r["variant"]))  # experiment.table lists variants in row order
    print(f"\n{experiment.provenance(sys.argv[1:] if argv is None else argv, time.perf_counter() - start)}\n")
    print(experiment.table(rows, {"acc_main": "main head acc", "acc_aux1": "aux1 acc", "acc_aux2": "aux2 acc",
                                  "log10_grad_main": "log₁₀ ‖∇conv1‖, main loss",
                                  "log10_grad_total": "log₁₀ ‖∇conv1‖, training loss",
                                  "grad_ratio": "training / main"}))
    title = (f"GoogLeNet, {budget.image_size} px synthetic shapes ({budget.classes} classes), {budget.steps} steps × "
             f"{budget.batch}, {budget.opt}, {args.seeds} seeds")
    figures(rows, args.assets, title, budget.classes)
    return rows


if __name__ == "__main__":
    cli_main(main)
