"""The segmentation data pipeline: VOC2012 (or the synthetic set), joint image+mask transforms, padding collate.

Image and mask go through every geometric step together (the same scale, crop and flip), masks only ever by
nearest-neighbour so no label is invented between two classes, and 255 ("void", VOC's object borders) fills every
pixel that has no label: padding, crop borders, the batch padding. The loss (`ignore_index=255`) and `ConfusionMatrix`
skip those pixels.
"""
from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from .errors import UserError, first_line
from .files import removed_on_failure
from .images import (ImageReadError, check_images, is_image_file, list_files, open_image, open_mask, oriented_size,
                     warning)
from .palette import voc_palette
from .synthetic import SyntheticContext, SyntheticSegmentation

IGNORE_INDEX = 255
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet statistics: the backbones' pretraining
MAX_MEGAPIXELS = 4.0  # largest image trained, evaluated or segmented at full size (VOC's are 0.19 MP): README, Large images


def working_size(width: int, height: int, max_megapixels: float) -> tuple[int, int]:
    """(width, height) scaled down, aspect kept, to at most `max_megapixels`; unchanged when it is already within."""
    limit = max_megapixels * 1e6
    if width * height <= limit:
        return width, height
    scale = (limit / (width * height)) ** 0.5
    w = max(1, int(width * scale))
    h = max(1, min(int(height * scale), int(limit) // w))  # a side clamped at 1 px must not push the area over
    return max(1, min(w, int(limit) // h)), h


def mask_to_array(mask: Image.Image, name: str = "mask") -> np.ndarray:
    """A palette ('P') or grayscale ('L') mask as its H×W uint8 class indices; an RGB mask is refused, since its
    colours are not class indices (VOC masks are palette PNGs)."""
    if mask.mode not in ("P", "L"):
        raise UserError(f"{name}: mask mode {mask.mode!r}; expected a palette (P) or grayscale (L) PNG of class indices")
    return np.asarray(mask, dtype=np.uint8)


def check_labels(labels: np.ndarray, num_classes: int, name: str) -> None:
    """Every label is a class index < num_classes or 255; anything else would silently corrupt the loss."""
    bad = np.unique(labels[(labels >= num_classes) & (labels != IGNORE_INDEX)])
    if bad.size:
        raise UserError(f"{name}: labels {bad.tolist()[:5]} are >= num_classes ({num_classes}) and not {IGNORE_INDEX}")


class SegTrainTransform:
    """Random scale (0.5–2.0), pad to the crop size (image 0, mask 255), random crop, horizontal flip, normalize.

    Everything after decoding runs on uint8 tensors: torchvision.transforms.v2.functional's vectorised antialiased
    bilinear resize for the image, and for the mask nearest-neighbour indices of the crop alone (`nearest_index`),
    which are the full resize's; the same steps on PIL images are slower (benchmarks/seg_pipeline.py). Uses torch's
    RNG, which the engine reseeds per epoch and the DataLoader per worker.
    """

    def __init__(self, crop_size: int, scale: tuple[float, float] = (0.5, 2.0), hflip: float = 0.5,
                 mean: Sequence[float] = MEAN, std: Sequence[float] = STD) -> None:
        self.crop_size, self.scale, self.hflip = crop_size, scale, hflip
        self.mean, self.std = mean, std

    def __call__(self, image: Image.Image, mask: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.scale[0] + (self.scale[1] - self.scale[0]) * torch.rand(()).item()
        w, h = image.size
        size = [max(1, round(h * s)), max(1, round(w * s))]
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        img = TF.resize(torch.from_numpy(np.array(rgb)).permute(2, 0, 1), size, antialias=True)  # H×W×3 memory
        crop = self.crop_size
        top = int(torch.randint(0, max(size[0], crop) - crop + 1, ()))  # in the image padded to the crop size
        left = int(torch.randint(0, max(size[1], crop) - crop + 1, ()))
        rows, cols = min(top + crop, size[0]) - top, min(left + crop, size[1]) - left  # the rest is padding
        # padding bottom/right (image 0, mask void); contiguous (C×H×W) right after the crop: the float pass and
        # F.pad are 3× slower on the resize's layout
        canvas = F.pad(img[:, top:top + rows, left:left + cols].contiguous(), (0, crop - cols, 0, crop - rows))
        # the mask: only the crop's rows and columns are resampled, by nearest's own index rule (so exactly the
        # full-size TF.resize(NEAREST) cropped, tests/test_segmentation.py); numpy's row/column gather is 8× torch's
        target = np.full((crop, crop), IGNORE_INDEX, dtype=np.uint8)
        target[:rows, :cols] = mask_to_array(mask)[nearest_index(top, top + rows, h, size[0])][
            :, nearest_index(left, left + cols, w, size[1])]
        target = torch.from_numpy(target)
        if torch.rand(()).item() < self.hflip:
            canvas, target = canvas.flip(-1), target.flip(-1)
        return normalize(canvas, self.mean, self.std), target.long()  # uint8 until here: 8× less memory to move


def nearest_index(start: int, stop: int, in_size: int, out_size: int) -> np.ndarray:
    """The source indices that nearest-neighbour resizing from `in_size` to `out_size` reads for output positions
    start..stop-1: torch's rule (`floor(i · in/out)` in float32, with its exact cases for equal and double sizes), so
    resampling only a crop equals resampling everything and then cropping."""
    out = np.arange(start, stop)
    if out_size == in_size:
        return out
    if out_size == 2 * in_size:
        return out // 2
    scale = np.float32(in_size) / np.float32(out_size)
    return np.minimum(np.floor(out.astype(np.float32) * scale).astype(np.int64), in_size - 1)


class SegEvalTransform:
    """Full size, no augmentation: metrics are measured on the label's own grid."""

    def __init__(self, mean: Sequence[float] = MEAN, std: Sequence[float] = STD) -> None:
        self.mean, self.std = mean, std

    def __call__(self, image: Image.Image, mask: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
        img = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
        return normalize(img, self.mean, self.std), torch.from_numpy(mask_to_array(mask).copy()).long()


def normalize(img: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 C×H×W (or N×C×H×W) → float, scaled to [0, 1] and standardised per channel: one new tensor (never the
    input, also for a float input), the rest in place."""
    out = img.to(torch.float32, copy=True).div_(255)
    return out.sub_(torch.tensor(mean).view(-1, 1, 1)).div_(torch.tensor(std).view(-1, 1, 1))


def collate_pad(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack images of different sizes by padding bottom/right: images with 0 (the mean after normalize), masks with 255,
    so the padding is ignored by the loss and the metric."""
    h = max(img.shape[-2] for img, _ in batch)
    w = max(img.shape[-1] for img, _ in batch)
    images = torch.zeros(len(batch), batch[0][0].shape[0], h, w, dtype=batch[0][0].dtype)
    masks = torch.full((len(batch), h, w), IGNORE_INDEX, dtype=torch.long)
    for i, (img, mask) in enumerate(batch):
        images[i, :, :img.shape[-2], :img.shape[-1]] = img
        masks[i, :mask.shape[-2], :mask.shape[-1]] = mask
    return images, masks


class VOCSegmentationFiles(Dataset):
    """VOC2012 in torchvision's `VOCSegmentation` layout (`<root>/VOCdevkit/VOC2012/...`), checked file by file.

    Every image is decoded and every mask read once at construction: a truncated JPEG, an image/mask size mismatch or a
    label >= num_classes other than 255 is a `UserError` naming the file, before training starts (not a PIL traceback
    mid-epoch or an opaque CUDA assert many steps later). `skip_bad` drops pairs whose image or mask cannot be read,
    with a warning. Blank lines in the split file are ignored; a split that lists no image is an error.
    """

    def __init__(self, root: Path, split: str, transforms, num_classes: int = len(VOC_CLASSES),
                 download: bool = False, skip_bad: bool = False, max_megapixels: float = MAX_MEGAPIXELS) -> None:
        from torchvision.datasets import VOCSegmentation

        root = Path(root)
        voc_root = root / "VOCdevkit" / "VOC2012"
        if not voc_root.is_dir() and not download:
            raise UserError(f"VOC2012 not found under {voc_root}; pass --download or point --data-path at it")
        try:
            with removed_on_failure(root):  # a failed download leaves no empty folder or partial archive
                voc = VOCSegmentation(str(root), year="2012", image_set=split,
                                      download=download and not voc_root.is_dir())
        except (OSError, RuntimeError) as exc:
            raise UserError(f"cannot read VOC2012 {split} split under {voc_root} ({first_line(exc)[:120]})") \
                from None
        pairs = [(Path(i), Path(m)) for i, m in zip(voc.images, voc.masks) if Path(i).name != ".jpg"]  # blank lines
        if not pairs:
            raise UserError(f"{voc_root / 'ImageSets' / 'Segmentation' / f'{split}.txt'} lists no images")
        for image_path, mask_path in pairs:
            for path in (image_path, mask_path):
                if not path.is_file():
                    raise UserError(f"{path}: listed in the split file but missing")
        self._keep(pairs, num_classes, transforms, skip_bad, max_megapixels, f"VOC2012 {split} split under {voc_root}")

    def _keep(self, pairs: list[tuple[Path, Path]], num_classes: int, transforms, skip_bad: bool,
              max_megapixels: float, where: str) -> None:
        """Check every (image, mask) pair (see `check`) and keep the good ones."""
        self.num_classes, self.transforms, self.max_megapixels = num_classes, transforms, max_megapixels
        readable = set(check_images([i for i, _ in pairs], skip_bad=skip_bad))
        self.images, self.masks = [], []
        for image_path, mask_path in pairs:
            if image_path in readable and self.check(image_path, mask_path, skip_bad):
                self.images.append(image_path)
                self.masks.append(mask_path)
        if not self.images:
            raise UserError(f"{where}: no readable image/mask pair left")

    def check(self, image_path: Path, mask_path: Path, skip_bad: bool = False) -> bool:
        """The pair as `__getitem__` will read it: the image's upright (EXIF-oriented) size must equal the mask's stored
        size, every label must be a class or 255, and the image must be within `max_megapixels`: evaluation runs at
        full size, and one 8000×8000 validation image took 23 GB. False (after a warning) for an unreadable mask under
        `skip_bad`."""
        width, height = oriented_size(image_path)
        if width * height > self.max_megapixels * 1e6:
            raise UserError(f"{image_path} is {width}x{height} ({width * height / 1e6:.1f} MP), above --max-megapixels "
                            f"{self.max_megapixels:g}: training and evaluation read images at full size; downscale it "
                            "and its mask, or raise --max-megapixels if the memory is there")
        try:
            mask = open_mask(mask_path)
        except ImageReadError as exc:
            if not skip_bad:
                raise UserError(f"{exc}; remove the pair from the split file or pass --skip-bad") from None
            warning(f"skipping {image_path}: its mask is not readable ({exc.reason})")
            return False
        if (width, height) != mask.size:
            raise UserError(f"image {image_path} is {width}x{height} but its mask {mask_path} is "
                            f"{mask.size[0]}x{mask.size[1]}")
        check_labels(mask_to_array(mask, str(mask_path)), self.num_classes, str(mask_path))
        return True

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image, mask = open_image(self.images[index]), open_mask(self.masks[index])
        return self.transforms(image, mask) if self.transforms else (image, mask)


class SegmentationFolder(VOCSegmentationFiles):
    """Your own data (`--data folder --data-path D`): `D/classes.txt` (one class name per line, line i = label i,
    background first), `D/train/images/*.jpg|png…` and `D/train/masks/<same stem>.png`, likewise `D/val/`. Masks hold
    the label of each pixel (an 8-bit grey or palette PNG; 255 = void, ignored). The class count comes from
    classes.txt (or `classes`, from `--classes FILE`), so any number of classes trains; every pair gets the VOC checks
    (sizes, labels < classes, readable)."""

    def __init__(self, root: Path, split: str, transforms, skip_bad: bool = False,
                 max_megapixels: float = MAX_MEGAPIXELS, classes: ClassNames | None = None) -> None:
        root = Path(root)
        self.classes = classes if classes is not None else read_classes(root)
        images_dir, masks_dir = root / split / "images", root / split / "masks"
        if not images_dir.is_dir():
            raise UserError(f"{images_dir} not found: --data folder reads {root}/{{train,val}}/images and .../masks")
        images = [p for p in list_files(images_dir) if is_image_file(p)]
        if not images:
            raise UserError(f"{images_dir} holds no images")
        missing = [p for p in images if not (masks_dir / f"{p.stem}.png").is_file()]
        if missing:
            raise UserError(f"{missing[0]} has no mask {masks_dir / (missing[0].stem + '.png')}"
                            f"{f' ({len(missing) - 1} more without one)' if len(missing) > 1 else ''}")
        self._keep([(p, masks_dir / f"{p.stem}.png") for p in images], len(self.classes), transforms, skip_bad,
                   max_megapixels, f"{root / split}")


class ClassNames(list):
    """The class names a run trains (a plain list: label i is `self[i]`) and one RGB colour per class, which masks and
    overlays are drawn in and the checkpoint keeps (VOC's colour of label i where the class file gives none)."""

    def __init__(self, names: Sequence[str], colours: Sequence[Sequence[int] | None] | None = None) -> None:
        super().__init__(names)
        given = list(colours or [None] * len(names))
        voc = voc_palette()
        self.colours = [tuple(c) if c is not None else tuple(voc[3 * i:3 * i + 3]) for i, c in enumerate(given)]


def _parse_colour(words: list[str]) -> tuple[list[str], tuple[int, int, int] | None]:
    """(name words, colour or None) for one class line: a trailing `#rrggbb`, `R,G,B` or `R G B` is the colour."""
    last = words[-1]
    if re.fullmatch(r"#[0-9a-fA-F]{6}", last):
        return words[:-1], tuple(int(last[i:i + 2], 16) for i in (1, 3, 5))
    if re.fullmatch(r"\d+,\d+,\d+", last):
        return words[:-1], tuple(int(v) for v in last.split(","))
    if len(words) > 3 and all(w.isdigit() for w in words[-3:]):
        return words[:-3], tuple(int(w) for w in words[-3:])
    return words, None


def read_class_file(path: Path) -> ClassNames:
    """One class per line, line i = label i, background first (blank lines ignored): a name, optionally followed by its
    colour as `#rrggbb`, `R,G,B` or `R G B` (0-255). At least two classes and at most 255 (label 255 is void), no name
    twice."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: list the class names there, one per line, background first")
    names, colours = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        words, colour = _parse_colour(line.split())
        if not words or (colour is not None and max(colour) > 255):
            raise UserError(f"{path}:{number}: {line.strip()!r} is not 'name' or 'name R G B' / 'name #rrggbb' "
                            "with colour values 0-255")
        names.append(" ".join(words))
        colours.append(colour)
    if len(names) < 2 or len(set(names)) != len(names):
        raise UserError(f"{path} must name at least two distinct classes, got {names}")
    if len(names) > IGNORE_INDEX:
        raise UserError(f"{path} names {len(names)} classes; at most {IGNORE_INDEX} fit in 8-bit masks (255 = void)")
    return ClassNames(names, colours)


def read_classes(root: Path) -> ClassNames:
    """`root/classes.txt` (the `--data folder` layout), in `read_class_file`'s format."""
    return read_class_file(Path(root) / "classes.txt")


def run_classes(args: argparse.Namespace, found: ClassNames | None, where: str) -> ClassNames:
    """The classes a run trains: `--classes FILE`, else what the data names (`found`), checked against `--num-classes`;
    with `--num-classes N` alone, labels 0..N-1 named `class_0` …"""
    if args.num_classes is not None and not 2 <= args.num_classes <= IGNORE_INDEX:
        raise UserError(f"--num-classes must be between 2 and {IGNORE_INDEX} (255 = void), got {args.num_classes}")
    classes = read_class_file(args.classes) if args.classes is not None else found
    if classes is None:
        if args.num_classes is None:
            raise UserError(f"{where} has no class names: add --classes FILE (one name per line) or --num-classes N")
        return ClassNames([f"class_{i}" for i in range(args.num_classes)])
    if args.num_classes is not None and args.num_classes != len(classes):
        source = args.classes or where
        raise UserError(f"--num-classes {args.num_classes} but {source} names {len(classes)} classes")
    return classes


def build_datasets(args: argparse.Namespace, crop_size: int, image_size: int = 64
                   ) -> tuple[Dataset, Dataset, ClassNames]:
    """(train set, val set, classes with their colours) for `--data voc|folder|synthetic`; train gets
    `SegTrainTransform(crop_size)`, val full size. The synthetic set draws `image_size`² images; `--synthetic-size` sets its train length (val: a quarter)."""
    train_tf, val_tf = SegTrainTransform(crop_size), SegEvalTransform()
    if args.data == "synthetic":
        if args.classes is not None or args.num_classes is not None:
            raise UserError("--classes and --num-classes are for --data voc|folder: the synthetic data has its own "
                            "classes")
        n = args.synthetic_size or 400
        kind = SyntheticContext if getattr(args, "synthetic_task", "shapes") == "context" else SyntheticSegmentation
        try:
            train = kind(size=n, image_size=image_size, seed=args.seed, split="train", transforms=train_tf)
        except ValueError as exc:
            raise UserError(f"--synthetic-task context: {exc}; raise --image-size") from None
        val = kind(size=max(1, n // 4), image_size=image_size, seed=args.seed, split="val", transforms=val_tf)
        return train, val, ClassNames(train.classes)
    checks = dict(skip_bad=args.skip_bad, max_megapixels=args.max_megapixels)
    if args.data == "voc":  # VOC's 21 names, or your own classes in VOC's layout (--classes / --num-classes)
        voc_names = ClassNames(VOC_CLASSES) if args.num_classes in (None, len(VOC_CLASSES)) else None
        classes = run_classes(args, voc_names, "VOC")
        train = VOCSegmentationFiles(args.data_path, "train", train_tf, num_classes=len(classes),
                                     download=args.download, **checks)
        val = VOCSegmentationFiles(args.data_path, "val", val_tf, num_classes=len(classes), download=False, **checks)
        return train, val, classes
    if args.data == "folder":
        listed = Path(args.data_path) / "classes.txt"
        found = read_classes(args.data_path) if args.classes is None and listed.is_file() else None
        classes = run_classes(args, found, str(listed))
        train = SegmentationFolder(args.data_path, "train", train_tf, classes=classes, **checks)
        return train, SegmentationFolder(args.data_path, "val", val_tf, classes=classes, **checks), classes
    raise UserError(f"--data {args.data!r}: this pipeline reads 'voc', 'folder' or 'synthetic'")
