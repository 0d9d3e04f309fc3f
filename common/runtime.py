"""Turn parsed flags into a `Runtime`: where to run, in which precision, on which rank, from which checkpoint.

Every check on user input happens here, before a single file is written, so bad input never damages an earlier run.
"""
from __future__ import annotations

import argparse
import os
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from . import checkpoint, cli, distributed


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    amp_dtype: torch.dtype | None = None  # None: full precision
    channels_last: bool = False
    resume: dict[str, Any] | None = field(default=None, repr=False)  # the loaded --resume checkpoint

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


def setup(args: argparse.Namespace) -> Runtime:
    """Validate flags, pick the device, join DDP, decide AMP/channels_last and load `--resume` (validated, not applied)."""
    cli.check_args(args)
    device = cli.resolve_device(args.device)
    resume = checkpoint.load_checkpoint(args.resume) if args.resume is not None else None
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
    if on_cuda:
        torch.backends.cudnn.benchmark = args.cudnn_benchmark
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    seed_everything(args.seed)
    return Runtime(device=device, rank=rank, world_size=world_size, amp_dtype=amp_dtype,
                   channels_last=on_cuda if args.channels_last is None else args.channels_last, resume=resume)
