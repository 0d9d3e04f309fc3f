"""Seeds × variants → one markdown table of mean ± sd and one PNG: the runner behind every folder's `compare.py`.

A variant is a name and the flags it adds to the folder's `train.main`; every variant gets the same base flags (the
same budget), each seed its own `--seed` and output folder. The table says what ran: the exact command, the machine,
the date and the wall time, so a README table is reproduced by the command printed above it.

    rows = experiment.run(train.main, [Variant("32s", ["--model", "fcn32s"]), ...], seeds=[0, 1, 2],
                          base=["--data", "synthetic", "--epochs", "8"], output_dir=Path("runs/06_fcn/compare"))
    print(experiment.table(rows, {"miou": "mIoU", "boundary_iou": "boundary IoU"}))
    experiment.plot(rows, "miou", "mIoU", Path("06_fcn/assets/compare.png"), title="FCN skips")
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import torch

from .errors import UserError
from .plots import save_figure


@dataclass
class Variant:
    """A name and the flags it adds to the shared base flags. `{seed}` and `{root}` (the experiment's output folder)
    in a flag are filled in per run, so a stage can start from an earlier variant's checkpoint of the same seed:
    `Variant("16s", ["--model", "fcn16s", "--weights", "{root}/32s/seed{seed}/last.pth"])` (the FCN paper's staged
    training)."""
    name: str
    argv: list[str] = field(default_factory=list)

    def flags(self, seed: int, root: Path) -> list[str]:
        return [a.format(seed=seed, root=root) for a in self.argv]


BUDGET_FLAGS = {"--image-size": "side of the synthetic images", "--synthetic-size": "training images",
                "--epochs": "epochs of every variant", "-b": "batch size"}


def get_args_parser(doc: str, folder: str, quick: Sequence[int], full: Sequence[int],
                    budget: dict[str, str] = BUDGET_FLAGS) -> argparse.ArgumentParser:
    """The flags every compare.py has: --quick (the README's CPU budget), --seeds, --device, --output-dir
    (runs/<folder>/compare), --assets (<folder>/assets), and one int flag per `budget` entry ({flag: what}) whose
    default is the matching value of `quick` (with --quick) or `full`."""
    root = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the README's CPU budget")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 … N-1 per variant (default: 3)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default: cpu)")
    parser.add_argument("--output-dir", type=Path, default=Path(f"runs/{folder}/compare"),
                        help="one run folder per variant and seed (default: %(default)s)")
    parser.add_argument("--assets", type=Path, default=root / folder / "assets", help="where the PNGs go")
    for (flag, what), q, f in zip(budget.items(), quick, full, strict=True):
        parser.add_argument(flag, type=int, default=None, help=f"{what} (default: {q} with --quick, else {f})")
    return parser


def budget_values(args: argparse.Namespace, quick: Sequence[int], full: Sequence[int],
                  budget: dict[str, str] = BUDGET_FLAGS, positive: Sequence[str] = ("--epochs",)) -> list[int]:
    """Each budget flag's value (given, else quick/full); `--seeds` and the `positive` flags must be at least 1,
    checked before anything trains."""
    values = [given if given is not None else default for given, default in zip(
        (getattr(args, flag.lstrip("-").replace("-", "_")) for flag in budget), quick if args.quick else full)]
    for flag, value in (("--seeds", args.seeds), *((f, v) for f, v in zip(budget, values) if f in positive)):
        if value < 1:
            raise UserError(f"{flag} must be at least 1, got {value}")
    return values


def run(train_main: Callable[[list[str]], dict[str, Any]], variants: Sequence[Variant], seeds: Sequence[int],
        base: Sequence[str], output_dir: Path, log: Callable[[str], None] | None = print) -> list[dict[str, Any]]:
    """Train every variant with every seed, in the order given (variants first); one row per run: variant, seed, the
    final epoch's metrics, seconds."""
    names = [v.name for v in variants]
    if len(set(names)) != len(names) or not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"variants and seeds must be distinct and non-empty, got {names} and {list(seeds)}")
    rows = []
    for variant in variants:
        for seed in seeds:
            start = time.perf_counter()
            summary = train_main([*base, *variant.flags(seed, Path(output_dir)), "--seed", str(seed),
                                  "--output-dir", str(Path(output_dir) / variant.name / f"seed{seed}"), "--overwrite"])
            rows.append({"variant": variant.name, "seed": seed, **summary["metrics"],
                         "seconds": time.perf_counter() - start})
            if log is not None:
                log(f"{variant.name} seed {seed}: " + ", ".join(
                    f"{k} {v:.4f}" for k, v in summary["metrics"].items() if isinstance(v, float)))
    return rows


def mean_and_sd(values: Sequence[float]) -> tuple[float, float, int]:
    """(mean, sample sd (n − 1; 0 for one value), n) over the finite values: a NaN (e.g. the IoU of a class absent from
    both label and prediction in that run) is left out, and n says how many counted."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan, 0
    return statistics.mean(finite), statistics.stdev(finite) if len(finite) > 1 else 0.0, len(finite)


def mean_sd(values: Sequence[float]) -> str:
    """`0.412 ± 0.013` (sample sd, n − 1), the value alone for one run, `(n=2)` when NaNs were left out, `–` if all."""
    mean, sd, n = mean_and_sd(values)
    if n == 0:
        return "–"
    shown = f"{mean:.3f}" if len(values) == 1 else f"{mean:.3f} ± {sd:.3f}"
    return shown if n == len(values) else f"{shown} (n={n})"


def summarise(rows: Sequence[dict[str, Any]], key: str) -> dict[str, list[float]]:
    """{variant: [value per seed]} in the order the variants ran."""
    out: dict[str, list[float]] = {}
    for row in rows:
        out.setdefault(row["variant"], []).append(float(row[key]))
    return out


def table(rows: Sequence[dict[str, Any]], columns: dict[str, str]) -> str:
    """Markdown: a row per variant, `columns` ({metric key: header}) as mean ± sd over its seeds, then seeds and the
    mean seconds per run."""
    per = {key: summarise(rows, key) for key in [*columns, "seconds"]}
    lines = ["| variant | " + " | ".join(columns.values()) + " | seeds | time / run |",
             "| --- | " + " | ".join("---:" for _ in columns) + " | ---: | ---: |"]
    for variant, seconds in per["seconds"].items():
        cells = [mean_sd(per[key][variant]) for key in columns]
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {len(seconds)} | {statistics.mean(seconds):.0f} s |")
    return "\n".join(lines)


def provenance(argv: Sequence[str], seconds: float) -> str:
    """The line above a README table: the command that reproduces it, the machine, the date, the wall time."""
    command = "python " + shlex.join([Path(sys.argv[0]).as_posix(), *argv])
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (f"`{command}` — {platform.machine()} with {os.cpu_count()} cores, {gpu}{load}, torch {torch.__version__}, "
            f"{date.today().isoformat()}, wall time {seconds / 60:.1f} min")


def plot(rows: Sequence[dict[str, Any]], key: str, label: str, path: Path, *, title: str) -> Path:
    """Bar chart of `key` per variant (mean, error bar ± sd, every seed as a dot), titled and labelled, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    values = summarise(rows, key)
    names = list(values)
    means, sds, _ = zip(*(mean_and_sd(v) for v in values.values()))
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(names), 3.4), dpi=120)
    ax.bar(names, means, yerr=sds, capsize=4, color="#7aa6d6", label="mean ± sd")
    for i, v in enumerate(values.values()):
        ax.scatter([i] * len(v), v, color="#1f3b5c", s=12, zorder=3, label="one seed" if i == 0 else None)
    ax.set_title(title)
    ax.set_xlabel("variant")
    ax.set_ylabel(label)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def prediction_grid(dataset: Any, columns: dict[str, Callable[[Any], Any]], path: Path, *, title: str,
                    n: int = 3) -> Path:
    """Rows of `dataset` images (its `.sample(i)` → uint8 image, mask; `[i]` → PIL image, mask): image | label | one
    column per predictor (PIL image → H×W class map), in the VOC colours, with a legend of `dataset.classes` and void.
    One picture of what the table's numbers mean: 06's stages, 04's variants, 07's versions with and without CRF."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Patch

    from common.palette import voc_palette

    colours = np.asarray(voc_palette(), dtype=np.float32).reshape(256, 3) / 255
    titles = ["image", "label", *columns]
    fig, axes = plt.subplots(n, len(titles), figsize=(2.2 * len(titles), 2.3 * n + 0.6), dpi=110, squeeze=False)
    for i in range(n):
        img, mask = dataset.sample(i)
        shown = [img, colours[mask], *(colours[predict(dataset[i][0])] for predict in columns.values())]
        for ax, picture, name in zip(axes[i], shown, titles):
            ax.imshow(picture)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=9)
    handles = [Patch(color=colours[k], label=c) for k, c in enumerate(dataset.classes)]
    fig.legend(handles=[*handles, Patch(color=colours[255], label="void")], loc="lower center",
               ncol=min(len(handles) + 1, 8), fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05 * (1 + len(handles) // 8), 1, 0.95))
    return save_figure(fig, path)
