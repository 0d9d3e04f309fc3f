"""Accuracy vs shots per class on a shifted target: where does fine-tuning start to beat freezing?

    python 08_transfer/compare.py --quick --update-readme   # the README table: tudui, 32 px, 3 seeds, ≤ 10 min on 2 CPUs
    python 08_transfer/compare.py --device cuda             # larger: resnet18, 5 seeds, 1,000 steps of 64, 2,000 val

Per seed, a source model is trained from scratch on the synthetic source task (`train.py --synthetic-task source`: six
shapes, colours that differ in brightness). The target is four other shapes drawn with a domain shift (shift.py:
low-contrast colours under uneven lighting). For every shots value k (k training images per class, the first k of one
seeded pool, so the 5-shot set is part of the 20-shot set) each method trains on the target:

  scratch         random initialisation, everything trains
  freeze          the notes' Transfer Learning: the source backbone frozen, the head trains on augmented images
  features        the notes' Extract Feature Vector: the frozen backbone runs once (one extraction per seed, on the pool
                  and val), the head trains on the cached, unaugmented vectors
  finetune ×s     the notes' Fine-tuning: the first stages frozen (train.py's default: a majority), the rest at
                  lr × s (s = 0.1, the default of train.py, and 1), the head at lr

Same budget for every row and column: the same optimizer steps (not epochs), batch, lr, cosine schedule, seeds. Same
epochs would give the 500-shot runs 100× the updates of the 5-shot runs, so the curve would mix data and compute; with
the same steps a point on the x axis differs from its neighbour by the data alone. That is also why the loop is here,
not train.main: 5 shots × 4 classes are 20 images, and train.main evaluates and checkpoints every epoch. The methods are
train.py's own pieces (frozen_stages, set_frozen, make_optimizer, HeadOnly, its augmentation) and
common/feature_cache.extract_features.
Accuracy is on held-out target images after the last step. Prints the provenance line and the markdown table (mean ± sd
over seeds), writes `assets/shots.png` and, with --update-readme, the table into README.md between the markers.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from common import cli, experiment, schedule  # noqa: E402
from common.errors import UserError, cli_main  # noqa: E402
from common.classification import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from common.feature_cache import extract_features  # noqa: E402
from common.synthetic import TRANSFER_SOURCE  # noqa: E402
from common.tensor_loader import TensorLoader  # noqa: E402
from common.weights import load_matching  # noqa: E402
import train  # noqa: E402
from model import HeadOnly, build_model, feature_extractor  # noqa: E402
from shift import ShiftedShapes  # noqa: E402

README = HERE / "README.md"
BEGIN, END = "<!-- compare:begin -->", "<!-- compare:end -->"
SCALES = (0.1, 1.0)  # finetune's backbone lr scale: train.py's default and the full lr


@dataclass(frozen=True)
class Config:
    """Everything a run depends on besides the seeds: one number per knob, the same for every method and shots value."""
    model: str
    shots: tuple[int, ...]
    steps: int  # optimizer steps per target run, every method and shots value
    batch: int
    lr: float  # target lr (the head's; finetune's backbone gets lr × scale)
    val_per_class: int
    source_size: int  # source task: training images (6 shapes)
    source_epochs: int
    source_lr: float
    image_size: int = 32

    @property
    def pool(self) -> int:
        return max(self.shots)


QUICK = Config("tudui", (5, 20, 100, 500), steps=150, batch=32, lr=0.01, val_per_class=100, source_size=2400,
               source_epochs=4, source_lr=0.01)
FULL = Config("resnet18", (5, 20, 100, 500), steps=1000, batch=64, lr=0.01, val_per_class=500, source_size=12000,
              source_epochs=15, source_lr=0.02)


def variants() -> list[tuple[str, str, float]]:
    """(row name, train.py --method, backbone lr scale)."""
    return [("scratch", "scratch", 1.0), ("freeze", "freeze", 1.0), ("features", "features", 1.0),
            *((f"finetune ×{s:g}", "finetune", s) for s in SCALES)]


def shots_subset(targets: list[int], k: int) -> np.ndarray:
    """Indices of the first `k` images of every class, in index order: deterministic given the pool (hence the seed),
    and nested, so the k-shot set is part of every larger one and a curve's points differ by added images only."""
    labels = np.asarray(targets)
    picked = [np.flatnonzero(labels == c)[:k] for c in np.unique(labels)]
    if any(len(p) < k for p in picked):
        raise ValueError(f"the pool has fewer than {k} images of some class")
    return np.sort(np.concatenate(picked))


def cycled(n: int, config: Config) -> np.ndarray:
    """steps × batch indices into an n-image training set, every image equally often (±1): the budget, whatever n."""
    return np.resize(np.arange(n), config.steps * config.batch)


def method_args(config: Config, method: str, scale: float) -> argparse.Namespace:
    """train.py's parsed flags for this method, so frozen stages and optimizer groups are exactly train.py's."""
    return train.get_args_parser().parse_args(["--model", config.model, "--method", method, "--lr", str(config.lr),
                                               "--backbone-lr-scale", str(scale)])


def fit_steps(net: nn.Module, optimizer: torch.optim.Optimizer, batches, steps: int) -> int:
    """`steps` SGD steps with the cosine schedule train.py uses, stepped per step here. Returns the images seen."""
    scheduler = schedule.cosine_lr(optimizer, steps)
    net.train()
    seen = 0
    for x, y in islice(batches, steps):
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        seen += len(y)
    return seen


@torch.inference_mode()
def accuracy(net: nn.Module, batches) -> float:
    """Top-1 accuracy over every batch, in eval mode: the number each table cell averages."""
    net.eval()
    correct = total = 0
    for x, y in batches:
        correct += (net(x).argmax(1) == y).sum().item()
        total += len(y)
    return correct / total


class Target:
    """One seed's target: the pool (max shots per class) and val images, plus the source model's vectors of both,
    extracted once and shared by every shots value of `features` (the feature cache, in memory)."""

    def __init__(self, config: Config, seed: int, source: dict, device: torch.device) -> None:
        self.config, self.seed, self.device = config, seed, device
        classes = len(ShiftedShapes.SHAPES)
        self.pool = ShiftedShapes(config.pool * classes, config.image_size, classes, seed, "train")
        self.val = ShiftedShapes(config.val_per_class * classes, config.image_size, classes, seed, "val")
        model = self.transferred(source)
        extractor = feature_extractor(model, config.model)
        self.vectors = {split: extract_features(extractor, self.images(data, train_mode=False), device)
                        for split, data in (("train", self.pool), ("val", self.val))}

    def images(self, data: ShiftedShapes, train_mode: bool, index: np.ndarray | None = None) -> TensorLoader:
        """train.py's synthetic loader: on the device, normalised, random crop (size/8 padding) + flip for training."""
        index = np.arange(len(data)) if index is None else index
        pad = self.config.image_size // 8 if train_mode else 0
        return TensorLoader(data.data[index], np.asarray(data.targets)[index], self.config.batch, train=train_mode,
                            drop_last=train_mode, device=self.device, seed=self.seed, crop_padding=pad,
                            flip=train_mode, mean=IMAGENET_MEAN, std=IMAGENET_STD)

    def transferred(self, source: dict | None) -> nn.Module:
        """A target model: random (seeded) initialisation, then the source's tensors wherever name and shape match."""
        torch.manual_seed(self.seed)
        model = build_model(self.config.model, num_classes=len(ShiftedShapes.SHAPES))
        if source is not None:
            load_matching(model, source, log=None)
        return model.to(self.device)

    def run(self, method: str, scale: float, k: int, source: dict) -> dict:
        """Train one method on the k-shot subset for config.steps steps (the image methods of a seed all draw the same
        batches and crops): val accuracy, images seen, trainable parameters."""
        args = method_args(self.config, method, scale)
        model = self.transferred(None if method == "scratch" else source)
        trainable = train.set_frozen(model, self.config.model, train.frozen_stages(args, 0))
        optimizer = train.make_optimizer(model, self.config.model, args)
        subset = shots_subset(self.pool.targets, k)
        order = subset[cycled(len(subset), self.config)]
        if method == "features":
            vectors, labels = (t.to(self.device) for t in self.vectors["train"])
            g = torch.Generator().manual_seed(self.seed)
            steps = torch.from_numpy(order)[torch.randperm(len(order), generator=g)].view(self.config.steps, -1)
            net = HeadOnly(model, self.config.model)
            seen = fit_steps(net, optimizer, ((vectors[i], labels[i]) for i in steps.to(self.device)),
                             self.config.steps)
            val = [tuple(t.to(self.device) for t in self.vectors["val"])]
        else:
            net = model
            seen = fit_steps(net, optimizer, iter(self.images(self.pool, train_mode=True, index=order)),
                             self.config.steps)
            val = self.images(self.val, train_mode=False)
        return {"accuracy": accuracy(net, val), "images_seen": seen, "trainable": trainable}


def pretrain_source(config: Config, seed: int, device: str, output_dir: Path) -> tuple[dict, float]:
    """train.py's source run (scratch on the six source shapes) for this seed: (state_dict, source val accuracy)."""
    images = config.source_size // len(TRANSFER_SOURCE) * len(TRANSFER_SOURCE)  # what train.py draws
    summary = train.main(["--model", config.model, "--synthetic-task", "source", "--method", "scratch",
                          "--synthetic-size", str(config.source_size), "--epochs", str(config.source_epochs),
                          "-b", str(min(32, images)), "--lr", str(config.source_lr),
                          "--image-size", str(config.image_size), "--device", device, "--seed", str(seed),
                          "--print-freq", "1000000", "--output-dir", str(output_dir), "--overwrite"])
    return torch.load(output_dir / "last.pth", weights_only=True)["model"], summary["metrics"]["accuracy"]


def experiment_rows(config: Config, seeds: range, device: str, output_dir: Path) -> tuple[list[dict], list[float]]:
    """One row per (variant, seed) with the accuracy per shots value (keys `str(k)`) and the mean seconds per run, in
    experiment.table's format; and the source val accuracy per seed."""
    rows, source_accuracy = [], []
    for seed in seeds:
        source, acc = pretrain_source(config, seed, device, output_dir / f"source_seed{seed}")
        source_accuracy.append(acc)
        target = Target(config, seed, source, torch.device(device))
        for name, method, scale in variants():
            row, start = {"variant": name, "seed": seed}, time.perf_counter()
            for k in config.shots:
                row[str(k)] = target.run(method, scale, k, source)["accuracy"]
            row["seconds"] = (time.perf_counter() - start) / len(config.shots)
            rows.append(row)
            print(f"seed {seed} {name}: " + ", ".join(f"{k} shots {row[str(k)]:.3f}" for k in config.shots),
                  flush=True)
    return rows, source_accuracy


def plot(rows: list[dict], config: Config, path: Path, *, title: str) -> Path:
    """Accuracy vs shots per class (log x), a line per method with ± sd error bars, chance level dashed."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for name, *_ in variants():
        stats = [experiment.mean_and_sd([r[str(k)] for r in rows if r["variant"] == name]) for k in config.shots]
        ax.errorbar(config.shots, [m for m, _, _ in stats], yerr=[sd for _, sd, _ in stats], marker="o", capsize=3,
                    label=name)
    ax.axhline(1 / len(ShiftedShapes.SHAPES), color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xscale("log")
    ax.set_xticks(config.shots, [str(k) for k in config.shots])
    ax.set_xlabel("training images per class (log scale)")
    ax.set_ylabel("target val accuracy (mean ± sd over seeds)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return experiment.save_figure(fig, path)


def write_readme(block: str, readme: Path) -> None:
    """Replace what lies between the BEGIN and END markers of `readme` by `block`; everything else stays."""
    text = readme.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise UserError(f"{readme} needs exactly one {BEGIN} ... {END} block to replace")
    head, rest = text.split(BEGIN)
    readme.write_text(f"{head}{BEGIN}\n{block}\n{END}{rest.split(END)[1]}")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the README's CPU budget (tudui; else resnet18)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0 … N-1 (default: 3 with --quick, else 5)")
    parser.add_argument("--shots", type=int, nargs="+", default=None, help="images per class (default: 5 20 100 500)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per target run (default: "
                        f"{QUICK.steps} with --quick, else {FULL.steps})")
    parser.add_argument("--source-size", type=int, default=None, help="source training images (default: "
                        f"{QUICK.source_size} with --quick, else {FULL.source_size})")
    parser.add_argument("--source-epochs", type=int, default=None, help="source epochs (default: "
                        f"{QUICK.source_epochs} with --quick, else {FULL.source_epochs})")
    parser.add_argument("--val-per-class", type=int, default=None, help="target val images per class (default: "
                        f"{QUICK.val_per_class} with --quick, else {FULL.val_per_class})")
    parser.add_argument("-b", "--batch-size", type=int, default=None, help="target batch size (default: "
                        f"{QUICK.batch} with --quick, else {FULL.batch})")
    parser.add_argument("--device", default="cpu", help="auto | cpu | cuda | cuda:N (default: cpu)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default: 1: on a shared 2-core CPU two "
                        "spinning threads trained tudui 9× slower than one)")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/08_transfer/compare"),
                        help="the source runs (default: %(default)s)")
    parser.add_argument("--assets", type=Path, default=HERE / "assets", help="where shots.png goes")
    parser.add_argument("--update-readme", action="store_true", help=f"write the table into {README.name}")
    return parser


def config_from(args: argparse.Namespace) -> Config:
    """The --quick or full config with the flags given on top, checked before anything trains."""
    base = QUICK if args.quick else FULL
    given = {"shots": tuple(args.shots) if args.shots else None, "steps": args.steps, "batch": args.batch_size,
             "source_size": args.source_size, "source_epochs": args.source_epochs,
             "val_per_class": args.val_per_class}
    config = replace(base, **{k: v for k, v in given.items() if v is not None})
    for flag, value in (("--steps", config.steps), ("-b", config.batch), ("--source-epochs", config.source_epochs),
                        ("--val-per-class", config.val_per_class), ("--shots", min(config.shots)),
                        ("--threads", args.threads), ("--seeds", args.seeds or 1)):
        if value < 1:
            raise UserError(f"{flag} must be at least 1, got {value}")
    if config.source_size < len(TRANSFER_SOURCE):
        raise UserError(f"--source-size must be at least {len(TRANSFER_SOURCE)} (one image per source class)")
    if len(set(config.shots)) != len(config.shots):
        raise UserError(f"--shots must be distinct, got {list(config.shots)}")
    return config


def main(argv: list[str] | None = None) -> str:
    args = get_args_parser().parse_args(argv)
    config = config_from(args)
    seeds = range(args.seeds or (3 if args.quick else 5))
    device = cli.resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    rows, source_accuracy = experiment_rows(config, seeds, str(device), args.output_dir)
    table = experiment.table(rows, {str(k): f"{k} shots" for k in config.shots})
    source = ", ".join(f"{a:.3f}" for a in source_accuracy)
    note = (f"{config.model}, {config.image_size} px. Source: {config.source_size} images of 6 shapes, "
            f"{config.source_epochs} epochs, val accuracy {source} (seeds {list(seeds)}). Target: 4 other shapes, "
            f"shifted colours and lighting, k training images per class, {config.val_per_class * 4} val images; "
            f"every cell {config.steps} steps of batch {config.batch} at lr {config.lr:g} (cosine). "
            "Time / run: one method at one shots value.")
    provenance = experiment.provenance(sys.argv[1:] if argv is None else argv, time.perf_counter() - start)
    block = "\n".join([provenance, "", table, "", note])
    print(f"\n{block}")
    plot(rows, config, args.assets / "shots.png",
         title=f"Transfer to a shifted target: {config.model}, {len(seeds)} seeds, {config.steps} steps each")
    if args.update_readme:
        write_readme(block, README)
    return block


if __name__ == "__main__":
    cli_main(main)
