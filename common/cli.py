"""The flags every train.py shares (torchvision references' names), and their validation."""
from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from .errors import UserError

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's


def add_common_args(parser: argparse.ArgumentParser, *, folder: str, data_choices: Sequence[str], epochs: int,
                    batch_size: int, lr: float, default_data: str | None = None) -> None:
    """Add the shared flags; defaults are the folder's (the notes' values where the notes give them)."""
    choices = tuple(dict.fromkeys([*data_choices, "synthetic"]))
    g = parser.add_argument_group("common")
    g.add_argument("--data", default=default_data or choices[0], choices=choices,
                   help="data set; 'synthetic' is built in and needs no download (default: %(default)s)")
    g.add_argument("--data-path", type=Path, default=Path("data"), help="where real data sets live (default: ./data)")
    g.add_argument("--download", action="store_true", help="download the real data set into --data-path if missing")
    g.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable image files (truncated, not an image) with a warning instead of stopping with "
                        "an error naming the first one; every image is checked before training starts")
    g.add_argument("--synthetic-size", type=int, default=None, metavar="N",
                   help="number of synthetic training images (validation gets a quarter)")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (auto = cuda when available)")
    g.add_argument("--epochs", type=int, default=epochs, help="total epochs (default: %(default)s)")
    g.add_argument("-b", "--batch-size", type=int, default=batch_size, help="batch size per process (default: %(default)s)")
    g.add_argument("--eval-batch-size", type=int, default=None, help="evaluation batch size (default: 2 x --batch-size)")
    g.add_argument("--lr", type=float, default=lr, help="learning rate (default: %(default)s)")
    g.add_argument("-j", "--workers", type=int, default=None,
                   help="DataLoader worker processes (default: 0 on CPU, min(8, CPU cores per GPU) on CUDA)")
    g.add_argument("--seed", type=int, default=0, help="epoch e reseeds every RNG from seed + e (default: %(default)s)")
    g.add_argument("--output-dir", type=Path, default=None,
                   help=f"checkpoints and TensorBoard events (default: runs/{folder}; with --resume, the "
                        "checkpoint's folder, so a resumed run continues where it was)")
    parser.set_defaults(default_output_dir=Path("runs") / folder)
    g.add_argument("--resume", type=Path, default=None, metavar="PATH", help="continue from a checkpoint (e.g. last.pth)")
    g.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --output-dir (its checkpoints and TensorBoard events are removed "
                        "when this run writes its first file); without it such a folder is refused")
    g.add_argument("--test-only", action="store_true",
                   help="only evaluate --resume or --weights on the validation set: prints the metrics and the "
                        "per-class table, writes eval.json into --output-dir, never touches last.pth/best.pth")
    g.add_argument("--weights", default=None, metavar="PATH",
                   help="initialise from a checkpoint, state_dict file or torchvision weights name (shape-matched)")
    g.add_argument("--limit-batches", type=int, default=None, metavar="N", help="cap train and eval batches per epoch")
    g.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="mixed precision (default: on for CUDA, off on CPU)")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="channels_last memory format (default: on for CUDA, off on CPU)")
    g.add_argument("--cudnn-benchmark", action=argparse.BooleanOptionalAction, default=True,
                   help="let cuDNN pick the fastest kernels for the input shapes (CUDA only; default: on)")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--compile-mode", default=None, choices=COMPILE_MODES,
                   help="torch.compile's mode, with --compile; reduce-overhead replays each step as a CUDA graph, "
                        "which removes the launch cost of small models on a GPU (default: torch's default)")
    g.add_argument("--cuda-graph", action="store_true",
                   help="capture each training step's forward and backward once as a CUDA graph and replay it: removes "
                        "the per-kernel launch cost that dominates small models on a fast GPU; the optimizer step, "
                        "LR schedule, clipping and EMA stay eager (CUDA only; not with --compile or torchrun)")
    g.add_argument("--clip-grad-norm", type=float, default=None, metavar="MAX",
                   help="scale the gradients down to a total L2 norm of at most MAX before each step (default: off)")
    g.add_argument("--model-ema", action="store_true",
                   help="keep an exponential moving average of the weights, updated every step: it is what is "
                        "evaluated, picks best.pth and is saved as the checkpoint's model (predict.py and export.py "
                        "use it); the trained weights are kept beside it for --resume")
    g.add_argument("--model-ema-decay", type=float, default=0.999,
                   help="EMA weight of the old average per step (default: %(default)s)")
    g.add_argument("--use-deterministic-algorithms", action="store_true",
                   help="torch.use_deterministic_algorithms(True) and no cuDNN benchmark: bit-identical reruns on one "
                        "machine, slower, and an error for an op with no deterministic kernel")
    g.add_argument("--sync-bn", action="store_true",
                   help="under torchrun with several processes, BatchNorm statistics over the whole global batch "
                        "(SyncBatchNorm; CUDA only, as torch's is); one process has nothing to synchronise")
    g.add_argument("--print-freq", type=int, default=100, help="log train loss every N steps (default: %(default)s)")


def check_args(args: argparse.Namespace) -> None:
    """Reject impossible values before anything is built or written; fill in `--output-dir` (see its help)."""
    if args.output_dir is None:
        args.output_dir = args.resume.parent if args.resume is not None else args.default_output_dir
    if args.test_only and args.resume is None and args.weights is None:
        raise UserError("--test-only evaluates a trained model: give --resume CHECKPOINT or --weights")
    check_at_least({"--epochs": args.epochs, "--batch-size": args.batch_size, "--print-freq": args.print_freq,
                    "--eval-batch-size": args.eval_batch_size, "--limit-batches": args.limit_batches,
                    "--synthetic-size": args.synthetic_size}, 1)
    if not args.lr > 0:
        raise UserError(f"--lr must be positive, got {args.lr}")
    if getattr(args, "weight_decay", 0) < 0:  # the folders that have these flags
        raise UserError(f"--weight-decay must be >= 0, got {args.weight_decay}")
    if not 0 <= getattr(args, "momentum", 0) < 1:
        raise UserError(f"--momentum must be in [0, 1), got {args.momentum}")
    if args.workers is not None and args.workers < 0:
        raise UserError(f"--workers must be >= 0, got {args.workers}")
    if args.compile_mode is not None and not args.compile:
        raise UserError(f"--compile-mode {args.compile_mode} needs --compile")
    if args.cuda_graph and args.compile:
        raise UserError("--cuda-graph and --compile are two ways to graph a step: pick one (--compile-mode "
                        "reduce-overhead is torch.compile's CUDA graphs)")
    if args.clip_grad_norm is not None and not args.clip_grad_norm > 0:
        raise UserError(f"--clip-grad-norm must be positive, got {args.clip_grad_norm}")
    if not 0 < args.model_ema_decay < 1:
        raise UserError(f"--model-ema-decay must be in (0, 1), got {args.model_ema_decay}")
    if hasattr(args, "lr_scheduler"):  # a folder with the recipe flags (common/recipe.py)
        from .recipe import check_recipe_args

        check_recipe_args(args)
    if args.data_path.exists() and not args.data_path.is_dir():
        raise UserError(f"--data-path {args.data_path} is a file, not a folder")


def check_at_least(values: dict[str, int | None], minimum: int, why: str | None = None) -> None:
    """`UserError` "--flag must be at least N, got V" for the first flag below `minimum` (None: not given)."""
    for flag, value in values.items():
        if value is not None and value < minimum:
            raise UserError(f"{flag} must be at least {minimum}" + (f" ({why})" if why else "") + f", got {value}")


def resolve_device(spec: str) -> torch.device:
    """`auto` picks CUDA when present; an explicit CUDA request on a machine without it is an error, never a fallback."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UserError(f"--device {spec!r} is not a device (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {spec} requested but CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif device.type != "cpu":
        raise UserError(f"--device {spec!r} is not supported (use auto, cpu, cuda or cuda:N)")
    return device


def ensure_writable_dir(path: Path, flag: str = "--output-dir") -> None:
    """Prove that `path` can be created and written, so a long run cannot die at its first checkpoint, without
    creating it: a run that stops on bad input leaves nothing behind. The folder appears with its first file."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{flag} {path} is not writable ({existing} is a file)")
    if existing != path:
        if not os.access(existing, os.W_OK | os.X_OK):
            raise UserError(f"{flag} {path} is not writable (cannot create folders in {existing})")
        return
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise UserError(f"{flag} {path} is not writable ({exc.strerror or exc})") from None
