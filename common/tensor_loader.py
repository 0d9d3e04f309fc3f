"""An in-memory loader for data sets that fit in (GPU) memory, such as CIFAR-10 and the synthetic sets.

The notes' DataLoader decodes, converts (ToTensor) and collates every image in Python on every epoch; on a GPU that leaves
the card idle most of the time. Here the uint8 images are moved to the device once; each batch is an index into them, and
random crop, horizontal flip and normalisation run on the device, batched. Deterministic under a seed, DDP-aware.

Why it is fast (benchmarks/input_pipeline.py): a batch is one `index_select` and two elementwise ops. For augmentation the
images are stored zero-padded once, plus a mirrored copy when flipping (about 0.5 GB for CIFAR-10 with crop and flip), so
batch selection + crop + flip is that single `index_select` of image rows instead of select, pad, crop and flip per batch.
Few large ops also keep the CPU path fast when its cores are shared.
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
        images = images.contiguous().to(self.device)
        self.labels = torch.as_tensor(labels, dtype=torch.long).to(self.device)
        if len(images) != len(self.labels):
            raise ValueError(f"{len(images)} images but {len(self.labels)} labels")
        self.batch_size, self.train, self.seed = batch_size, train, seed
        self.crop_padding, self.flip = crop_padding, flip
        self.drop_last = train if drop_last is None else drop_last
        self.rank, self.world_size = rank, world_size
        self.source = None  # F×N×C×(H+2p)×(W+2p): the padded images, and their mirror images when flipping (F = 2)
        if train and (crop_padding > 0 or flip):
            p = crop_padding
            padded = F.pad(images, (p, p, p, p))
            self.source = torch.stack([padded, padded.flip(3)]) if flip else padded[None]
            h, w = images.shape[2:]
            images = self.source[0, :, :, p:p + h, p:p + w]  # a view, not a second copy
            # every run of w consecutive pixels in the source's memory as one row of a (view-only) matrix, and where the h
            # rows of each channel of a crop start relative to the crop's first pixel
            flat = self.source.view(-1)
            self.rows = flat.as_strided((flat.numel() - w + 1, w), (1, 1))
            hp, wp = h + 2 * p, w + 2 * p
            self.row_starts = (torch.arange(images.shape[1], device=self.device)[:, None] * hp * wp
                               + torch.arange(h, device=self.device)[None, :] * wp)  # C×h
        self.images = images
        channels = images.shape[1]
        self.mean = torch.tensor(mean, device=self.device).view(1, channels, 1, 1) * 255 if mean is not None else None
        self.std = torch.tensor(std, device=self.device).view(1, channels, 1, 1) * 255 if std is not None else None
        # a 0-dim tensor on the device, not the number 255: CUDA divides by a Python number as a multiply by its
        # reciprocal (1 ulp off ToTensor's x / 255 in some pixels); by a tensor it divides, as the CPU does
        self.scale = torch.tensor(255.0, device=self.device)
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
            images = self.augment(batch, g) if self.source is not None else self.images.index_select(0, batch)
            if self.mean is not None:
                images = images.sub(self.mean).div_(self.std)  # uint8 − float gives float: no separate .float() pass
            else:
                images = images.div(self.scale)  # ToTensor's [0, 1], bit for bit on every device
            yield images, self.labels.index_select(0, batch)

    def augment(self, batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """The uint8 images at `batch`, each randomly cropped (an H×W window of the zero-padded image) and flipped with
        probability ½, as torchvision's RandomCrop(padding=p) + RandomHorizontalFlip, in one gather on their device."""
        n, p = len(batch), self.crop_padding
        _, count, channels, hp, wp = self.source.shape
        dy = dx = mirror = torch.zeros(n, dtype=torch.long, device=self.device)
        if p > 0:
            dy = torch.randint(0, 2 * p + 1, (n,), device=self.device, generator=g)
            dx = torch.randint(0, 2 * p + 1, (n,), device=self.device, generator=g)
        if self.flip:
            mirror = (torch.rand(n, device=self.device, generator=g) < 0.5).long()
            dx = torch.where(mirror.bool(), 2 * p - dx, dx)  # mirror(crop at dx) = crop of the mirror image at 2p − dx
        first = ((mirror * count + batch) * channels * hp + dy) * wp + dx  # memory offset of each crop's first pixel
        rows = self.rows.index_select(0, (first[:, None, None] + self.row_starts).flatten())  # n·C·h rows of w pixels
        return rows.view(n, channels, hp - 2 * p, wp - 2 * p)
