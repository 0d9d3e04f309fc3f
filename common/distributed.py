"""DDP under `torchrun`: the same train.py runs on 1 process or N, nothing home-made launches processes."""
from __future__ import annotations

import os
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

from .errors import UserError


def init_distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """Join the process group when launched by torchrun; return (rank, world_size, this process's device).

    torchrun sets RANK, WORLD_SIZE and LOCAL_RANK. On CUDA each process takes `cuda:LOCAL_RANK` and talks nccl; on CPU gloo.
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1, device
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world_size,
                                device_id=device if device.type == "cuda" else None)
    return rank, world_size, device


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


def world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main_process() -> bool:
    """Only rank 0 logs, shows progress bars and writes checkpoints."""
    return rank() == 0


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over all ranks in place (a no-op on one process)."""
    if is_dist():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def sync_batchnorm(model: nn.Module) -> nn.Module:
    """`model` with every BatchNorm layer a `SyncBatchNorm` (`--sync-bn`): each rank normalises with the statistics of
    the global batch instead of its own share. The parameters and buffers are the same tensors (an optimizer built on
    the model still updates them, the state_dict keys do not change); a model without BatchNorm is an error, since
    the flag could not do anything."""
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        raise UserError(f"--sync-bn: {type(model).__name__} has no BatchNorm layer to synchronise")
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def cleanup() -> None:
    if is_dist():
        dist.destroy_process_group()


class ShardSampler(Sampler[int]):
    """Evaluation sampler: rank r takes indices r, r+W, r+2W, ... with no padding.

    DistributedSampler pads the last shard with repeats, which would count some images twice in the reduced metrics.
    """

    def __init__(self, length: int, rank: int, world_size: int) -> None:
        self.indices = range(rank, length, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
