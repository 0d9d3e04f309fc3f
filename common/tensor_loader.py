"""An in-memory loader for data sets that fit in (GPU) memory, such as CIFAR-10 and the synthetic sets.

The notes' DataLoader decodes, converts (ToTensor) and collates every image in Python on every epoch; on a GPU that leaves
the card idle most of the time. Here the uint8 images are moved to the device once; each batch is an index into them, and
random crop, horizontal flip and normalisation run on the device, batched. Deterministic under a seed, DDP-aware.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F


class TensorLoader:
    """Yields (images float N×C×H×W, labels int64) batches from uint8 images held on `device`.

    - train=True: a fresh permutation each epoch from (seed, epoch); every rank gets an equal share of it, so DDP ranks
      run the same number of steps; crop (`crop_padding` px zero padding, then a random H×W window) and flip apply.
    - train=False: the images in order, rank r taking r, r+W, ... (no repeats), no augmentation.
    """

    def __init__(self, images: np.ndarray | torch.Tensor, labels: Sequence[int] | torch.Tensor, batch_size: int, *,
                 train: bool, device: torch.device | str = "cpu", seed: int = 0, crop_padding: int = 0,
                 flip: bool = False, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 drop_last: bool | None = None, rank: int = 0, world_size: int = 1) -> None:
        images = torch.as_tensor(images)
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError("images must be a uint8 tensor of shape N×H×W×C (CIFAR's .data) or N×C×H×W")
        if images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
            images = images.permute(0, 3, 1, 2)  # N×H×W×C → N×C×H×W
        self.device = torch.device(device)
        self.images = images.contiguous().to(self.device)
        self.labels = torch.as_tensor(labels, dtype=torch.long).to(self.device)
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        self.batch_size, self.train, self.seed = batch_size, train, seed
        self.crop_padding, self.flip = crop_padding, flip
        self.drop_last = train if drop_last is None else drop_last
        self.rank, self.world_size = rank, world_size
        channels = self.images.shape[1]
        self.mean = torch.tensor(mean, device=self.device).view(1, channels, 1, 1) * 255 if mean is not None else None
        self.std = torch.tensor(std, device=self.device).view(1, channels, 1, 1) * 255 if std is not None else None
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Pick the epoch whose permutation and augmentation to draw (the engine calls this, as with DistributedSampler)."""
        self.epoch = epoch

    def indices(self) -> torch.Tensor:
        """This rank's sample indices for the current epoch, in batch order (on the CPU)."""
        n = len(self.labels)
        if not self.train:
            return torch.arange(self.rank, n, self.world_size)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(n, generator=g)
        per_rank = n // self.world_size
        return perm[self.rank * per_rank:(self.rank + 1) * per_rank]

    def __len__(self) -> int:
        n = len(self.indices()) if not self.train else len(self.labels) // self.world_size
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        idx = self.indices().to(self.device)
        g = torch.Generator(device=self.device).manual_seed((self.seed * 1_000_003 + self.epoch) * 8 + self.rank + 1)
        for b in range(len(self)):
            batch = idx[b * self.batch_size:(b + 1) * self.batch_size]
            images = self.images[batch]
            if self.train:
                images = self.augment(images, g)
            images = images.float()
            if self.mean is not None:
                images = (images - self.mean) / self.std
            else:
                images = images / 255  # ToTensor's [0, 1]
            yield images, self.labels[batch]

    def augment(self, images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Batched random crop (zero padding) and horizontal flip on uint8 images, on their device."""
        n, _, h, w = images.shape
        p = self.crop_padding
        if p > 0:
            padded = F.pad(images, (p, p, p, p))
            dy = torch.randint(0, 2 * p + 1, (n, 1), device=self.device, generator=g)
            dx = torch.randint(0, 2 * p + 1, (n, 1), device=self.device, generator=g)
            rows = (dy + torch.arange(h, device=self.device))[:, None, :, None]  # n×1×h×1
            cols = (dx + torch.arange(w, device=self.device))[:, None, None, :]  # n×1×1×w
            images = padded[torch.arange(n, device=self.device)[:, None, None, None],
                            torch.arange(images.shape[1], device=self.device)[None, :, None, None], rows, cols]
        if self.flip:
            flip = torch.rand(n, device=self.device, generator=g) < 0.5
            images = torch.where(flip[:, None, None, None], images.flip(3), images)
        return images
