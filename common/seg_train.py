"""The segmentation training recipe shared by 04_dilated_conv, 06_fcn and 07_deeplab: data → loaders, then SGD (momentum
0.9) with poly LR stepped per iteration, cross-entropy ignoring 255, mIoU and boundary IoU each epoch, and checkpoints
predict.py can use.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from . import data, engine, metrics, recipe, segmentation
from .errors import UserError
from .runtime import Runtime

DATA_CHOICES = ("voc", "folder", "synthetic")  # --data of every segmentation train.py; folder = your own data
SYNTHETIC_IMAGE_SIZE = 64  # tests keep it small; experiments that need field of view use 128-256


def add_segmentation_args(parser: argparse.ArgumentParser, voc_crop_size: int) -> None:
    """The recipe's own flags: the training crop (VOC's default is the folder's paper value), synthetic data, your own
    classes, and common/recipe.py's optimizer and schedule flags with FCN/DeepLab's values as defaults."""
    parser.add_argument("--crop-size", type=int, default=None,
                        help=f"training crop (default: {voc_crop_size} for VOC, --image-size for synthetic; "
                             "evaluation is at full size)")
    parser.add_argument("--image-size", type=int, default=SYNTHETIC_IMAGE_SIZE,
                        help="side of the synthetic images (default: %(default)s; VOC images keep their own size)")
    parser.add_argument("--synthetic-task", default="shapes", choices=("shapes", "context"),
                        help="synthetic data: shapes at several scales and thin bars, or those plus dot_a/dot_b, "
                             "told apart only by markers 20-40 px away (needs --image-size >= 46; default: shapes)")
    parser.add_argument("--classes", type=Path, default=None, metavar="FILE",
                        help="your classes, one per line (line i = label i, background first), each optionally followed "
                             "by its mask colour as R G B or #rrggbb; kept in the checkpoint for predict.py (default: "
                             "VOC's 21 for voc, <data-path>/classes.txt for folder)")
    parser.add_argument("--num-classes", type=int, default=None, metavar="N",
                        help="labels 0..N-1 (255 = void), checked against the class names and every mask; alone, the "
                             "classes are named class_0 … (default: the number of class names)")
    parser.add_argument("--max-megapixels", type=float, default=segmentation.MAX_MEGAPIXELS,
                        help="refuse, before training, a data image larger than this: evaluation runs at full size "
                             "(default: %(default)s)")
    # FCN/DeepLab's recipe as the defaults: SGD momentum 0.9, weight decay 1e-4, poly LR per iteration, short warmup
    recipe.add_recipe_args(parser, classification=False, momentum=0.9, weight_decay=1e-4, lr_scheduler="poly",
                           lr_warmup_epochs=None)


def crop_size(args: argparse.Namespace, voc_crop_size: int) -> int:
    """`--crop-size`, or the default for `--data` (the whole synthetic image; the folder's VOC crop for real photos);
    below 1 is a `UserError`, and so is a synthetic `--image-size` below 8 or above 1024."""
    if not 8 <= args.image_size <= 1024:
        raise UserError(f"--image-size must be between 8 and 1024, got {args.image_size}")
    size = args.crop_size if args.crop_size is not None else (args.image_size if args.data == "synthetic" else voc_crop_size)
    if size < 1:
        raise UserError(f"--crop-size must be at least 1, got {size}")
    if not args.max_megapixels > 0:
        raise UserError(f"--max-megapixels must be positive, got {args.max_megapixels}")
    return size


def segmentation_loaders(args: argparse.Namespace, rt: Runtime, crop_size: int, drop_last: bool = False
                         ) -> tuple[Any, Any, list[str]]:
    """(train loader, val loader, classes) for `--data voc|folder|synthetic`: random-scale crops for training, full-size
    images for evaluation, batches padded with 255 where sizes differ."""
    train_set, val_set, classes = segmentation.build_datasets(args, crop_size, image_size=args.image_size)
    if rt.is_main:
        print(f"train set: {len(train_set)} images, val set: {len(val_set)} images ({args.data}, {rt.device})")
    train_loader, val_loader = data.make_loaders(train_set, val_set, args, rt, collate_fn=segmentation.collate_pad,
                                                 drop_last=drop_last)
    return train_loader, val_loader, classes


def class_colours(classes: list[str]) -> list[tuple[int, ...]]:
    """One RGB colour per class: those of a `ClassNames` (`--classes FILE`), else VOC's for labels 0..C-1."""
    if isinstance(classes, segmentation.ClassNames):
        return classes.colours
    return segmentation.ClassNames(classes).colours


def fit_segmentation(model: nn.Module, train_loader: Any, val_loader: Any, *, args: argparse.Namespace, rt: Runtime,
                     classes: list[str], model_name: str, model_kwargs: dict[str, Any], crop_size: int,
                     criterion: Callable | None = None) -> dict[str, Any]:
    """Train with the FCN/DeepLab recipe (the flags' defaults): SGD momentum 0.9 + `--weight-decay`, poly LR (power 0.9,
    short warmup) per iteration, `criterion` (default: cross-entropy with ignore_index=255), ConfusionMatrix → mIoU picks
    best.pth;
    boundary IoU (2 px) is logged beside it."""
    optimizer = recipe.build_optimizer(model.parameters(), args)
    scheduler = recipe.build_scheduler(optimizer, args, min(len(train_loader), args.limit_batches or len(train_loader)))
    meta = engine.Meta(model_name=model_name, class_names=classes, model_kwargs=model_kwargs,
                       preprocess={"mean": list(segmentation.MEAN), "std": list(segmentation.STD)},
                       extra={"crop_size": crop_size, "palette": [list(c) for c in class_colours(classes)]})
    criterion = criterion or nn.CrossEntropyLoss(ignore_index=segmentation.IGNORE_INDEX)
    return engine.fit(model, criterion, optimizer, train_loader, val_loader, args=args, rt=rt,
                      metric=metrics.MetricSet(metrics.ConfusionMatrix(len(classes)), metrics.BoundaryIoU(len(classes))),
                      meta=meta, scheduler=scheduler,
                      scheduler_interval="step")
