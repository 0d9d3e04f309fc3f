"""Built-in data sets, so every script runs offline in minutes (`--data synthetic`).

Both are procedurally drawn and deterministic per index: image i depends only on (seed, split, i). They mimic the real sets'
interfaces (CIFAR10's `.data`/`.targets`/`.classes`; VOCSegmentation's (PIL image, PIL palette mask) pairs) and can be written
to disk in the real layouts, so the real loaders are what the tests exercise.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from .palette import to_palette_image

SPLITS = {"train": 0, "val": 1, "test": 1}


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    return yy, xx


def _shape_mask(kind: str, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, r: float,
                period: float) -> np.ndarray:
    """Boolean mask of one shape centred at (cy, cx) with half-size r. Every shape is symmetric under a horizontal flip,
    so flip augmentation never turns one class into another."""
    dy, dx = yy - cy, xx - cx
    box = (np.abs(dy) <= r) & (np.abs(dx) <= r)
    w = max(r * 0.3, 1.0)
    if kind == "disk":
        return dy**2 + dx**2 <= r**2
    if kind == "square":
        return box
    if kind == "triangle":
        return (dy <= r) & (dy >= -r) & (np.abs(dx) <= (dy + r) / 2)
    if kind == "cross":
        return box & ((np.abs(dy) <= w / 2 + 0.5) | (np.abs(dx) <= w / 2 + 0.5))
    if kind == "ring":
        d = np.sqrt(dy**2 + dx**2)
        return (d <= r) & (d >= r - w)
    if kind == "hstripes":
        return box & ((yy // period) % 2 == 0)
    if kind == "vstripes":
        return box & (((xx - cx + 1000 * period) // period) % 2 == 0)
    if kind == "checker":
        return box & ((((yy // period) + ((xx - cx + 1000 * period) // period)) % 2) == 0)
    if kind == "x":
        return box & ((np.abs(dy - dx) <= w * 0.75) | (np.abs(dy + dx) <= w * 0.75))
    if kind == "frame":
        return box & ~((np.abs(dy) <= r - w) & (np.abs(dx) <= r - w))
    if kind == "bar":  # thin object: a 1-3 px line
        return (np.abs(dy) <= period / 2) & (np.abs(dx) <= r)
    raise ValueError(f"unknown shape {kind!r}")


def _colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random foreground and background colour that differ clearly in brightness (either may be the lighter one)."""
    fg = rng.uniform(0.0, 1.0, 3)
    bg = rng.uniform(0.0, 1.0, 3)
    gap = 0.45 - abs(fg.mean() - bg.mean())
    if gap > 0:
        shift = gap if fg.mean() >= bg.mean() else -gap
        fg, bg = np.clip(fg + shift / 2, 0, 1), np.clip(bg - shift / 2, 0, 1)
    return fg, bg


def _background(rng: np.random.Generator, size: int, bg: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Textured background: a colour, a soft sinusoidal texture and pixel noise (so a plain threshold is not enough)."""
    fy, fx = rng.uniform(0.1, 0.6, 2)
    phase = rng.uniform(0, 2 * np.pi)
    texture = 0.06 * np.sin(fy * yy + fx * xx + phase)
    return bg[None, None, :] + texture[..., None] + rng.normal(0, 0.04, (size, size, 3))


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


class SyntheticShapes(Dataset):
    """CIFAR-like classification: class k is a shape or pattern drawn at a random place, size and colour pair on a
    textured background. `.data` (N×H×W×3 uint8), `.targets` and `.classes` match torchvision's CIFAR10."""

    SHAPES = ("disk", "square", "triangle", "cross", "ring", "hstripes", "vstripes", "checker", "x", "frame")

    def __init__(self, size: int = 5000, image_size: int = 32, num_classes: int = 10, seed: int = 0,
                 split: str = "train", transform: Callable[[Image.Image], Any] | None = None) -> None:
        if not 2 <= num_classes <= len(self.SHAPES):
            raise ValueError(f"num_classes must be in [2, {len(self.SHAPES)}], got {num_classes}")
        self.classes = list(self.SHAPES[:num_classes])
        self.transform = transform
        self.targets = [i % num_classes for i in range(size)]
        self.data = np.stack([self.draw(i, image_size, seed, split) for i in range(size)]) if size else \
            np.zeros((0, image_size, image_size, 3), np.uint8)

    def draw(self, index: int, image_size: int, seed: int, split: str) -> np.ndarray:
        rng = np.random.default_rng([seed, SPLITS[split], index])
        yy, xx = _grid(image_size)
        fg, bg = _colours(rng)
        img = _background(rng, image_size, bg, yy, xx)
        r = rng.uniform(0.22, 0.36) * image_size
        cy, cx = rng.uniform(r, image_size - r, 2)
        period = rng.integers(max(2, image_size // 16), max(3, image_size // 8) + 1)
        mask = _shape_mask(self.classes[self.targets[index]], yy, xx, cy, cx, r, float(period))
        img[mask] = fg + rng.normal(0, 0.04, (int(mask.sum()), 3))
        return _to_uint8(img)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        img = Image.fromarray(self.data[index])
        return (self.transform(img) if self.transform else img), self.targets[index]


def shapes_subset(classes: tuple[str, ...], per_class: int, image_size: int, seed: int, split: str) -> SyntheticShapes:
    """SyntheticShapes restricted to `classes` (relabelled 0..k-1 in that order), `per_class` images each: 08's source
    and target tasks, two disjoint sets of shapes."""
    full = SyntheticShapes(per_class * len(SyntheticShapes.SHAPES), image_size=image_size,
                           num_classes=len(SyntheticShapes.SHAPES), seed=seed, split=split)
    keep = [i for i, t in enumerate(full.targets) if full.classes[t] in classes]
    full.targets = [classes.index(full.classes[full.targets[i]]) for i in keep]
    full.data, full.classes = full.data[keep], list(classes)
    return full


TRANSFER_SOURCE = SyntheticShapes.SHAPES[:6]  # 08's synthetic source task ...
TRANSFER_TARGET = SyntheticShapes.SHAPES[6:]  # ... and its few-shot target: shapes the source never saw


def add_transfer_task_args(parser: argparse.ArgumentParser) -> None:
    """08's `--synthetic-task`, `--shots` and `--val-per-class` (what `transfer_task` takes)."""
    parser.add_argument("--synthetic-task", default="target", choices=("source", "target"),
                        help=f"source: {', '.join(TRANSFER_SOURCE)} (--synthetic-size images); "
                             f"target: {', '.join(TRANSFER_TARGET)}, --shots per class (default: %(default)s)")
    parser.add_argument("--shots", type=int, default=20, help="target task: training images per class (default: 20)")
    parser.add_argument("--val-per-class", type=int, default=50, help="target task: val images per class (default: 50)")


def transfer_task(task: str, image_size: int, seed: int, *, source_size: int, shots: int, val_per_class: int
                  ) -> tuple[SyntheticShapes, SyntheticShapes]:
    """(train, val) of 08's synthetic `task`: "source", `source_size` images over TRANSFER_SOURCE (val a quarter), or
    "target", `shots` training and `val_per_class` val images per TRANSFER_TARGET shape."""
    if task == "source":
        per_class = max(source_size // len(TRANSFER_SOURCE), 1)
        return (shapes_subset(TRANSFER_SOURCE, per_class, image_size, seed, "train"),
                shapes_subset(TRANSFER_SOURCE, max(per_class // 4, 1), image_size, seed, "val"))
    return (shapes_subset(TRANSFER_TARGET, shots, image_size, seed, "train"),
            shapes_subset(TRANSFER_TARGET, val_per_class, image_size, seed, "val"))


class SyntheticSegmentation(Dataset):
    """VOC-like segmentation: 1-4 objects (disks, squares, triangles, rings and thin bars, some small) on a textured
    background. Masks hold class indices, 0 = background, and a 255 "void" band on object borders like VOC's."""

    CLASSES = ("background", "disk", "square", "triangle", "ring", "bar")

    def __init__(self, size: int = 200, image_size: int = 64, num_classes: int = 6, seed: int = 0, split: str = "train",
                 transforms: Callable[[Image.Image, Image.Image], Any] | None = None, void_band: bool = True) -> None:
        if not 2 <= num_classes <= len(self.CLASSES):
            raise ValueError(f"num_classes must be in [2, {len(self.CLASSES)}], got {num_classes}")
        self.classes = list(self.CLASSES[:num_classes])
        self.num_shapes = num_classes  # background + the shape classes draw_objects paints
        self.size, self.image_size, self.seed, self.split = size, image_size, seed, split
        self.transforms, self.void_band = transforms, void_band

    def __len__(self) -> int:
        return self.size

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(H×W×3 uint8 image, H×W uint8 mask) for one index."""
        if not 0 <= index < self.size:
            raise IndexError(index)
        s = self.image_size
        rng = np.random.default_rng([self.seed, SPLITS[self.split], index, 1])
        yy, xx = _grid(s)
        _, bg = _colours(rng)
        img = _background(rng, s, bg, yy, xx)
        mask = np.zeros((s, s), np.uint8)
        self.draw_objects(rng, img, mask, yy, xx)
        if self.void_band:
            mask[_borders(mask)] = 255
        return _to_uint8(img), mask

    def draw_objects(self, rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, yy: np.ndarray,
                     xx: np.ndarray) -> None:
        """Paint 1-4 objects into `img` (H×W×3 float) and their classes into `mask`, later ones on top."""
        s = self.image_size
        for _ in range(rng.integers(1, 5)):
            cls = int(rng.integers(1, self.num_shapes))
            small = rng.random() < 0.3
            r = rng.uniform(0.05, 0.09) * s if small else rng.uniform(0.1, 0.25) * s
            r = max(r, 2.0)
            cy, cx = rng.uniform(r, s - r, 2)
            thickness = float(rng.integers(1, 4))
            obj = _shape_mask(self.classes[cls], yy, xx, cy, cx, r, thickness)
            fg, _ = _colours(rng)
            img[obj] = fg + rng.normal(0, 0.04, (int(obj.sum()), 3))
            mask[obj] = cls

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        img, mask = self.sample(index)
        pair = Image.fromarray(img), to_palette_image(mask)
        return self.transforms(*pair) if self.transforms else pair


class SyntheticContext(SyntheticSegmentation):
    """The segmentation set plus two classes that only context tells apart, for experiments on field of view.

    Besides the shapes (several scales, thin bars), each image holds 1-3 small dots (radius 2.5-4.5 px, random colour,
    the same for both classes). A dot is `dot_a` when four yellow markers sit at distance D straight above, below, left
    and right of its centre, `dot_b` when they are cyan; D is drawn from `context` (default 20-40 px). Markers are
    labelled background. No marker pixel lies within D − 4.5 − 2 px of any dot pixel (markers of one dot are kept away
    from every other dot), so a network whose receptive field is smaller than that sees the same thing for both classes
    and cannot beat chance between them; one whose field reaches D can be perfect. Needs `image_size` >= 2·(min D + 3)."""

    CLASSES = (*SyntheticSegmentation.CLASSES, "dot_a", "dot_b")
    MARKERS = {"dot_a": (1.0, 0.9, 0.1), "dot_b": (0.1, 0.85, 1.0)}  # yellow, cyan
    MARKER_RADIUS, DOT_RADIUS = 2.0, (2.5, 4.5)

    def __init__(self, size: int = 200, image_size: int = 128, seed: int = 0, split: str = "train",
                 transforms: Callable[[Image.Image, Image.Image], Any] | None = None, void_band: bool = True,
                 context: tuple[float, float] = (20.0, 40.0)) -> None:
        if image_size < 2 * (context[0] + 3):
            raise ValueError(f"image_size {image_size} cannot hold a dot with markers {context[0]:g} px away "
                             f"(needs at least {2 * (context[0] + 3):g})")
        super().__init__(size, image_size, len(SyntheticSegmentation.CLASSES), seed, split, transforms, void_band)
        self.classes = list(self.CLASSES)
        self.context = context

    def draw_objects(self, rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, yy: np.ndarray,
                     xx: np.ndarray) -> None:
        super().draw_objects(rng, img, mask, yy, xx)
        s, placed = self.image_size, []  # (cy, cx, D) of the dots drawn so far
        for _ in range(rng.integers(1, 4)):
            for _attempt in range(20):
                d = rng.uniform(self.context[0], min(self.context[1], s / 2 - 3))
                cy, cx = rng.uniform(d + 3, s - d - 3, 2)
                if all(self._apart((cy, cx, d), other) for other in placed):
                    break
            else:
                continue
            placed.append((cy, cx, d))
            name = "dot_a" if rng.random() < 0.5 else "dot_b"
            dot = _shape_mask("disk", yy, xx, cy, cx, rng.uniform(*self.DOT_RADIUS), 1.0)
            fg, _ = _colours(rng)
            img[dot] = fg + rng.normal(0, 0.04, (int(dot.sum()), 3))
            mask[dot] = self.classes.index(name)
            for my, mx in self.markers(cy, cx, d):
                marker = _shape_mask("disk", yy, xx, my, mx, self.MARKER_RADIUS, 1.0)
                img[marker] = np.asarray(self.MARKERS[name]) + rng.normal(0, 0.04, (int(marker.sum()), 3))
                mask[marker] = 0

    @staticmethod
    def markers(cy: float, cx: float, d: float) -> list[tuple[float, float]]:
        return [(cy - d, cx), (cy + d, cx), (cy, cx - d), (cy, cx + d)]

    def _apart(self, new: tuple[float, float, float], old: tuple[float, float, float]) -> bool:
        """Dots far enough apart that neither's markers come nearer to the other dot than to its own."""
        for (cy, cx, d), (oy, ox, od) in ((new, old), (old, new)):
            if any(np.hypot(my - oy, mx - ox) < self.context[0] for my, mx in self.markers(cy, cx, d)):
                return False
        return np.hypot(new[0] - old[0], new[1] - old[1]) >= 2 * self.DOT_RADIUS[1] + 2


def _borders(mask: np.ndarray) -> np.ndarray:
    """A 1-px band where labels change, where VOC annotators put 255. It lies on the lower label's side (the background's,
    for an object on background), so even a 1-px bar keeps its pixels."""
    padded = np.pad(mask, 1, mode="edge")
    h, w = mask.shape
    edge = np.zeros_like(mask, dtype=bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        edge |= padded[dy:dy + h, dx:dx + w] > mask
    return edge


def write_imagefolder(dataset: SyntheticShapes, root: Path) -> Path:
    """Write `root/<class>/<index>.png`, torchvision's ImageFolder layout."""
    root = Path(root)
    for name in dataset.classes:
        (root / name).mkdir(parents=True, exist_ok=True)
    for i, (img, label) in enumerate(zip(dataset.data, dataset.targets)):
        Image.fromarray(img).save(root / dataset.classes[label] / f"{i:05d}.png")
    return root


def write_voc(root: Path, splits: dict[str, SyntheticSegmentation]) -> Path:
    """Write VOC2012's layout under `root/VOCdevkit/VOC2012` (JPEGImages, SegmentationClass, ImageSets/Segmentation/<split>.txt)
    so torchvision's VOCSegmentation reads it as the real thing. Returns the VOC2012 folder."""
    voc = Path(root) / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    for split, dataset in splits.items():
        names = []
        for i in range(len(dataset)):
            name = f"{split}_{i:05d}"
            img, mask = dataset.sample(i)
            Image.fromarray(img).save(voc / "JPEGImages" / f"{name}.jpg", quality=95)
            to_palette_image(mask).save(voc / "SegmentationClass" / f"{name}.png")
            names.append(name)
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return voc
