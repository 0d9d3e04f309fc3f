"""Turn parsed flags into a `Runtime`: where to run, in which precision, on which rank, from which checkpoint.

Every check on user input happens here, before a single file is written, so bad input never damages an earlier run.
"""
from __future__ import annotations

import argparse
import atexit
import os
import random
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import checkpoint, cli, distributed
from .errors import UserError


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    amp_dtype: torch.dtype | None = None  # None: full precision
    channels_last: bool = False
    resume: dict[str, Any] | None = field(default=None, repr=False)  # the loaded --resume checkpoint
    replace: list[Path] = field(default_factory=list)  # --overwrite: the earlier run's files, removed before writing

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


RUN_FILES = ("last.pth", "best.pth", "events.out.tfevents.*")


def previous_run(output_dir: Path) -> list[Path]:
    """The files of an earlier run in `output_dir`: its checkpoints and TensorBoard event files."""
    if not output_dir.is_dir():
        return []
    return sorted(p for pattern in RUN_FILES for p in output_dir.glob(pattern) if p.is_file())


def check_previous_run(args: argparse.Namespace) -> list[Path]:
    """A second run into the same `--output-dir` would overwrite best.pth and stack its curves on the first run's.
    Allowed: `--resume` of a checkpoint in that folder (the same run, continued) or `--overwrite` (returns the files to
    remove); anything else is a `UserError` saying which of the three to use."""
    found = previous_run(args.output_dir)
    if not found:
        return []
    if getattr(args, "overwrite", False):
        return found
    if args.resume is not None and args.resume.resolve().parent == args.output_dir.resolve():
        return []
    raise UserError(f"--output-dir {args.output_dir} already holds a run ({found[0].name}); continue it with --resume "
                    f"{args.output_dir / 'last.pth'}, replace it with --overwrite, or choose another --output-dir")


LOCK = ".lock"  # "<pid> <host>" of the run writing into the folder


def lock_holder(output_dir: Path) -> str | None:
    """Who holds `output_dir`, as words for a message ("PID 4242"), or None when nobody else does: no lock, a lock of
    this process, or of a process of this machine that no longer runs (killed: its lock is stale)."""
    try:
        pid_text, host = (output_dir / LOCK).read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    if host != socket.gethostname():
        return f"PID {pid} on {host}"  # cannot be checked from here
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return f"PID {pid}"


def check_unlocked(output_dir: Path) -> None:
    holder = lock_holder(output_dir)
    if holder is not None:
        raise UserError(f"--output-dir {output_dir} is in use by another run ({holder}); wait for it to finish or "
                        f"choose another --output-dir (delete {output_dir / LOCK} if no run is using it)")


def _release(lock: Path, mine: str) -> None:
    try:
        if lock.read_text() == mine:
            lock.unlink()
    except OSError:
        pass


def prepare_output(args: argparse.Namespace, rt: Runtime) -> Path:
    """Call right before this run's first file is written (the engine does, before TensorBoard starts): creates
    `--output-dir`, takes its lock (one run per folder: two runs into one folder silently raced for best.pth), removes
    temp files that killed saves left there and, with `--overwrite`, the earlier run's files, now rather than at
    start-up, so a run that stops on bad input leaves the earlier one intact."""
    if rt.is_main:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        lock, mine = args.output_dir / LOCK, f"{os.getpid()} {socket.gethostname()}\n"
        if not (lock.is_file() and lock.read_text() == mine):
            check_unlocked(args.output_dir)
            tmp = args.output_dir / f"{LOCK}.{os.getpid()}"
            tmp.write_text(mine)
            os.replace(tmp, lock)
            atexit.register(_release, lock, mine)
        for path in rt.replace:
            path.unlink(missing_ok=True)
        rt.replace = []
        removed = checkpoint.remove_stale_temp_files(args.output_dir)
        if removed:
            print(f"removed {len(removed)} temp file(s) left by interrupted saves in {args.output_dir}")
    return args.output_dir


def setup(args: argparse.Namespace) -> Runtime:
    """Validate flags, pick the device, join DDP, decide AMP/channels_last, load `--resume` (validated, not applied) and
    check `--output-dir` (writable; not holding another run). Nothing is written here."""
    cli.check_args(args)
    device = cli.resolve_device(args.device)
    resume = checkpoint.load_checkpoint(args.resume) if args.resume is not None else None
    check_unlocked(args.output_dir)
    # every rank, before the process group forms: no rank has written yet; --test-only adds eval.json to any folder
    replace = [] if args.test_only else check_previous_run(args)
    if args.sync_bn and device.type != "cuda":
        raise UserError("--sync-bn needs CUDA: torch's SyncBatchNorm runs on GPUs only (on CPU each DDP process "
                        "keeps its own BatchNorm statistics)")
    if args.cuda_graph and int(os.environ.get("WORLD_SIZE", 1)) > 1:
        raise UserError("--cuda-graph does not run under torchrun with several processes (DDP's gradient hooks are "
                        "not captured); drop --cuda-graph or use one process")
    if args.cuda_graph and device.type != "cuda":
        raise UserError(f"--cuda-graph needs CUDA (--device {args.device} is {device.type})")
    rank, world_size, device = distributed.init_distributed(device)
    if rank == 0:
        cli.ensure_writable_dir(args.output_dir)
    on_cuda = device.type == "cuda"
    amp = on_cuda if args.amp is None else args.amp
    amp_dtype = None
    if amp:
        if not on_cuda:
            amp_dtype = torch.bfloat16  # CPU autocast only supports bf16; slower than fp32 on most CPUs, so opt-in
        else:
            amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if args.workers is None:  # decoding must keep up with a GPU; on a CPU, workers would compete with the model
        args.workers = min(8, (os.cpu_count() or 1) // max(torch.cuda.device_count(), 1)) if on_cuda else 0
    if args.use_deterministic_algorithms:  # CUBLAS_WORKSPACE_CONFIG: what deterministic cuBLAS needs (CUDA >= 10.2)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(args.use_deterministic_algorithms)  # the flag decides, also on a second run
    if on_cuda:
        torch.backends.cudnn.benchmark = args.cudnn_benchmark and not args.use_deterministic_algorithms
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    seed_everything(args.seed)
    return Runtime(device=device, rank=rank, world_size=world_size, amp_dtype=amp_dtype,
                   channels_last=on_cuda if args.channels_last is None else args.channels_last, resume=resume,
                   replace=replace)
