"""Classification data: CIFAR-10, any ImageFolder set (the hymenoptera ants/bees archive included) and the built-in
synthetic shapes, as train/val loaders. A missing or unreadable set is a one-line `UserError`, never a silent switch.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torchvision
from torchvision import transforms as T

from . import data
from .errors import UserError, first_line
from .files import removed_on_failure
from .images import check_images, open_image
from .recipe import image_augmentations
from .runtime import Runtime
from .synthetic import SyntheticShapes
from .tensor_loader import TensorLoader

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # what torchvision's weights expect
HYMENOPTERA_URL = "https://download.pytorch.org/tutorial/hymenoptera_data.zip"


def cifar10_problem(data_path: Path) -> str | None:
    """Why the CIFAR-10 files under `data_path` fail torchvision's check, naming the file (None: none are there)."""
    from torchvision.datasets.utils import check_integrity

    folder = data_path / torchvision.datasets.CIFAR10.base_folder
    expected = [*torchvision.datasets.CIFAR10.train_list, *torchvision.datasets.CIFAR10.test_list,
                [torchvision.datasets.CIFAR10.meta["filename"], torchvision.datasets.CIFAR10.meta["md5"]]]
    present = [name for name, _ in expected if (folder / name).exists()]
    if not present:
        return None
    for name, md5 in expected:
        if not (folder / name).is_file():
            return f"{folder / name} is missing"
        if not check_integrity(str(folder / name), md5):
            return f"{folder / name} is corrupt or incomplete (its MD5 is not CIFAR-10's)"
    return None


def load_cifar10(data_path: Path, download: bool, train_transform: Any = None, test_transform: Any = None
                 ) -> tuple[torchvision.datasets.CIFAR10, torchvision.datasets.CIFAR10]:
    """torchvision's CIFAR10 train and test sets under `data_path` (fetched with `download`; a failed download leaves
    nothing behind). A set that is there but damaged is named file by file, not reported as absent."""
    problem = cifar10_problem(data_path)
    if problem is not None:
        raise UserError(f"CIFAR-10 under {data_path}: {problem}; delete "
                        f"{data_path / torchvision.datasets.CIFAR10.base_folder} and run again with --download")
    try:
        with removed_on_failure(data_path):
            train = torchvision.datasets.CIFAR10(data_path, train=True, transform=train_transform, download=download)
            test = torchvision.datasets.CIFAR10(data_path, train=False, transform=test_transform, download=download)
    except RuntimeError:
        raise UserError(f"CIFAR-10 not found under {data_path}; add --download to fetch it "
                        "(or use --data synthetic to run offline)") from None
    except OSError as exc:
        raise UserError(f"could not download CIFAR-10 into {data_path} ({exc.__class__.__name__}: offline?); "
                        "use --data synthetic to run offline") from None
    return train, test


def fetch_hymenoptera(data_path: Path, download: bool) -> Path:
    """`data_path/hymenoptera_data` (train/ and val/ of ants and bees, the notes' example), downloaded if asked; a
    failed download leaves nothing behind (no empty data folder, no partial archive)."""
    root = data_path / "hymenoptera_data"
    if (root / "train").is_dir():
        return root
    if not download:
        raise UserError(f"no hymenoptera data at {root}; add --download to fetch the PyTorch tutorial's ants/bees "
                        "archive (or use --data synthetic to run offline)")
    try:
        with removed_on_failure(data_path):
            torchvision.datasets.utils.download_and_extract_archive(HYMENOPTERA_URL, download_root=str(data_path))
    except (OSError, RuntimeError) as exc:
        raise UserError(f"could not download {HYMENOPTERA_URL} into {data_path} ({exc.__class__.__name__}: offline?); "
                        "use --data synthetic to run offline") from None
    return root


def load_imagefolder(root: Path, train_transform: Any = None, val_transform: Any = None, *, skip_bad: bool = False
                     ) -> tuple[torchvision.datasets.ImageFolder, torchvision.datasets.ImageFolder]:
    """`root/train/<class>/*` and `root/val/<class>/*` as ImageFolders with the same classes (at least two), read by
    `open_image` (upright, transparency on white, 16-bit scaled) rather than torchvision's plain `convert("RGB")`.

    Every image is decoded once here, so a truncated JPEG or a text file named .jpg is one line naming the file before
    training starts, not a traceback from a DataLoader worker mid-epoch; `skip_bad` drops such files with a warning.
    """
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise UserError(f"--data imagefolder needs {root / split}/<class>/<images>")
    try:
        train = torchvision.datasets.ImageFolder(str(root / "train"), transform=train_transform, loader=open_image)
        val = torchvision.datasets.ImageFolder(str(root / "val"), transform=val_transform, loader=open_image)
    except (FileNotFoundError, OSError) as exc:
        raise UserError(f"{root}: {first_line(exc)}") from None
    if train.classes != val.classes:
        raise UserError(f"{root}: train/ and val/ have different class folders ({train.classes} vs {val.classes})")
    if len(train.classes) < 2:
        raise UserError(f"{root / 'train'}: classification needs at least 2 class folders, found {train.classes} "
                        "(one class trains to loss 0 and accuracy 1 and learns nothing)")
    for split, dataset in (("train", train), ("val", val)):
        good = set(check_images([Path(p) for p, _ in dataset.samples], skip_bad=skip_bad))
        dataset.samples = [(p, c) for p, c in dataset.samples if Path(p) in good]
        dataset.imgs, dataset.targets = dataset.samples, [c for _, c in dataset.samples]
        if not dataset.samples:
            raise UserError(f"{root / split}: no readable images left")
    return train, val


def imagefolder_or_hymenoptera(data_path: Path, download: bool, skip_bad: bool = False
                               ) -> tuple[torchvision.datasets.ImageFolder, torchvision.datasets.ImageFolder]:
    """`train/` and `val/` class folders under `data_path`, else the notes' hymenoptera ants/bees set there
    (`hymenoptera_data/`, fetched with `download`)."""
    if (data_path / "train").is_dir():
        return load_imagefolder(data_path, skip_bad=skip_bad)
    if not download and not (data_path / "hymenoptera_data" / "train").is_dir():
        raise UserError(f"no train/ and val/ class folders under {data_path}; point --data-path at an "
                        "ImageFolder set, add --download for the hymenoptera ants/bees set, or use --data synthetic")
    return load_imagefolder(fetch_hymenoptera(data_path, download), skip_bad=skip_bad)


def imagenet_preprocess(size: int, mean: Sequence[float], std: Sequence[float]) -> dict[str, Any]:
    """ImageNet-style evaluation: resize the short side to size·256/224, centre-crop `size` (stored for predict.py)."""
    return {"resize": round(size * 256 / 224), "crop": size, "mean": list(mean), "std": list(std)}


def add_augment_arg(parser: argparse.ArgumentParser) -> None:
    """`--augment/--no-augment`: the training augmentation below, or none (train images transformed like val ones).
    Flips are wrong where orientation is the class (digits, text, arrows)."""
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                        help="random crop/flip in training (default: on); --no-augment trains on the eval transform, "
                             "e.g. where a flip changes the class (digits)")


def classification_loaders(args: argparse.Namespace, rt: Runtime, size: int, *, synthetic_size: int = 0,
                           mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                           sets: tuple[Any, Any] | None = None, crop_padding: int = 0, drop_last: bool = False
                           ) -> tuple[Any, Any, list[str], dict[str, Any]]:
    """(train loader, val loader, class names, predict.py preprocessing) for `--data synthetic|cifar10|imagefolder`.

    Synthetic shapes are drawn at `size` and held in (GPU) memory (flip-augmented: every shape is flip-symmetric, and
    randomly shifted by up to `crop_padding` px); CIFAR-10 is resized to `size` with crop + flip augmentation;
    ImageFolder gets RandomResizedCrop + flip for training and resize + centre crop for evaluation, ImageNet style;
    `--auto-augment` / `--random-erase` join the training transform (common/recipe.py). `args.augment` False
    (`--no-augment`): none of that in training, the train images get the evaluation transform. `sets` (train, val):
    a folder's own data sets instead (in-memory shapes with `.data`, or ImageFolders), given the same treatment.
    """
    mean, std = list(mean), list(std)
    augment = getattr(args, "augment", True)
    tensors = "--data synthetic is held as one tensor on the device and flipped batch-wise here" \
        if args.data == "synthetic" else None
    policy, erase = image_augmentations(args, tensors, augment)  # --auto-augment, --random-erase
    if args.data == "synthetic":
        n = args.synthetic_size or synthetic_size
        train, val = sets or (SyntheticShapes(n, image_size=size, seed=args.seed, split="train"),
                              SyntheticShapes(max(n // 4, 1), image_size=size, seed=args.seed, split="val"))
        _check_full_batch(train, args, rt, drop_last)
        shard = dict(device=rt.device, seed=args.seed, rank=rt.rank, world_size=rt.world_size, mean=mean, std=std)
        eval_batch = args.eval_batch_size or 2 * args.batch_size
        loaders = (TensorLoader(train.data, train.targets, args.batch_size, train=True, flip=augment,
                                crop_padding=crop_padding if augment else 0, drop_last=drop_last, **shard),
                   TensorLoader(val.data, val.targets, eval_batch, train=False, **shard))
        return *loaders, list(train.classes), {"resize": [size, size], "mean": mean, "std": std}
    normalize = [T.ToTensor(), T.Normalize(mean, std)]
    if args.data == "cifar10":
        preprocess = {"resize": [size, size], "mean": mean, "std": std}
        val_tf = T.Compose([T.Resize(size), *normalize])
        train_tf = T.Compose([T.Resize(size), T.RandomCrop(size, padding=size // 8), T.RandomHorizontalFlip(),
                              *policy, *normalize, *erase]) if augment else val_tf
    elif args.data == "imagefolder":
        preprocess = imagenet_preprocess(size, mean, std)
        val_tf = T.Compose([T.Resize(preprocess["resize"]), T.CenterCrop(size), *normalize])
        train_tf = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), *policy, *normalize, *erase]) \
            if augment else val_tf
    else:
        raise ValueError(f"unknown --data {args.data!r}")
    if sets is not None:  # a folder's own sets get the same transforms, whatever --data they are
        train, val = sets
        train.transform, val.transform = train_tf, val_tf
    elif args.data == "cifar10":
        train, val = load_cifar10(args.data_path, args.download, train_tf, val_tf)
    else:
        train, val = load_imagefolder(args.data_path, train_tf, val_tf, skip_bad=args.skip_bad)
    _check_full_batch(train, args, rt, drop_last)
    return *data.make_loaders(train, val, args, rt, drop_last=drop_last), train.classes, preprocess


def _check_full_batch(train: Any, args: argparse.Namespace, rt: Runtime, drop_last: bool) -> None:
    """With `drop_last`, a training set smaller than one batch per process would train on nothing, silently."""
    if drop_last and len(train) // rt.world_size < args.batch_size:
        raise UserError(f"--batch-size {args.batch_size} is larger than the training set per process "
                        f"({len(train)} images, {rt.world_size} process(es)): no full batch to train on")
