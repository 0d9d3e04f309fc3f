"""The DataLoader path (the notes' `DataLoader(dataset, batch_size, shuffle, num_workers, drop_last)`), made DDP-aware."""
from __future__ import annotations

import argparse
from collections.abc import Callable

from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .distributed import ShardSampler
from .runtime import Runtime


def make_loaders(train_set: Dataset, val_set: Dataset, args: argparse.Namespace, rt: Runtime, *,
                 collate_fn: Callable | None = None, drop_last: bool = False) -> tuple[DataLoader, DataLoader]:
    """Train loader shuffled by a DistributedSampler (seeded by `--seed` and the epoch, so a resumed run sees the same
    order), val loader sharded without repeats. Pinned memory and persistent workers on CUDA."""
    pin = rt.device.type == "cuda"
    common = dict(num_workers=args.workers, pin_memory=pin, persistent_workers=args.workers > 0, collate_fn=collate_fn)
    train_sampler = DistributedSampler(train_set, num_replicas=rt.world_size, rank=rt.rank, shuffle=True,
                                       seed=args.seed, drop_last=drop_last)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, sampler=train_sampler, drop_last=drop_last, **common)
    val_loader = DataLoader(val_set, batch_size=args.eval_batch_size or 2 * args.batch_size,
                            sampler=ShardSampler(len(val_set), rt.rank, rt.world_size), **common)
    return train_loader, val_loader
