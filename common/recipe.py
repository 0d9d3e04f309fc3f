"""The training recipe from flags, named as in torchvision's references: optimizer, LR schedule and warmup, label
smoothing, mixup / cutmix, auto-augment and random erasing.

Each folder passes the notes' recipe as its defaults (`add_recipe_args(parser, momentum=0.9, weight_decay=4e-5, ...)`),
so a learner who passes no flag trains exactly as the notes say, and a practitioner gets torchvision's knobs by their
usual names. The schedule is rebuilt from the flags and the run length on every start (common/schedule.py), so a
`--resume` with a changed `--epochs` continues on the new curve. EMA, gradient clipping, SyncBatchNorm and
determinism are the loop's own (common/cli.py, common/engine.py), since every folder has them.
"""
from __future__ import annotations

import argparse
import functools
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from . import schedule
from .errors import UserError

AUTO_AUGMENT = ("ta_wide", "ra", "autoaugment")  # torchvision's --auto-augment names


def add_recipe_args(parser: argparse.ArgumentParser, *, classification: bool = True, **defaults: Any) -> None:
    """The recipe flags; `defaults` (e.g. `weight_decay=4e-5, lr_scheduler="cosine"`) are the folder's recipe.
    `classification` adds label smoothing, mixup/cutmix and the image augmentations."""
    g = parser.add_argument_group("training recipe (torchvision references' flag names)")
    g.add_argument("--opt", default="sgd", choices=("sgd", "adamw"), help="optimizer (default: %(default)s)")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default: %(default)s)")
    g.add_argument("--wd", "--weight-decay", dest="weight_decay", type=float, default=0.0,
                   help="weight decay (default: %(default)s)")
    g.add_argument("--lr-scheduler", default="constant", choices=schedule.SCHEDULES,
                   help="LR curve after the warmup: cosine to 0, step (× --lr-gamma every --lr-step-size epochs), poly "
                        "(1 − t/T)^0.9, constant (default: %(default)s)")
    g.add_argument("--lr-step-size", type=int, default=30, help="epochs between LR drops of --lr-scheduler step "
                                                                 "(default: %(default)s)")
    g.add_argument("--lr-gamma", type=float, default=0.1, help="LR factor per drop of --lr-scheduler step "
                                                               "(default: %(default)s)")
    g.add_argument("--lr-warmup-epochs", type=float, default=0.0,
                   help="epochs of LR warmup before the schedule, fractions allowed (default: %(default)s; None: "
                        "the segmentation recipe's 1 %% of the steps, from 0.1 × lr)")
    g.add_argument("--lr-warmup-method", default="linear", choices=schedule.WARMUP_METHODS,
                   help="linear: from --lr-warmup-decay × lr up to lr; constant: held at it (default: %(default)s)")
    g.add_argument("--lr-warmup-decay", type=float, default=0.01,
                   help="the warmup's LR factor at its start (default: %(default)s)")
    if classification:
        g.add_argument("--label-smoothing", type=float, default=0.0,
                       help="cross-entropy against (1 − ε)·one-hot + ε/C (default: %(default)s)")
        g.add_argument("--mixup-alpha", type=float, default=0.0,
                       help="mixup: blend image pairs with λ ~ Beta(α, α) and their labels alike; 0 = off "
                            "(default: %(default)s)")
        g.add_argument("--cutmix-alpha", type=float, default=0.0,
                       help="cutmix: paste a box of another image, labels mixed by area, λ ~ Beta(α, α); 0 = off; "
                            "with --mixup-alpha each batch gets one of the two (default: %(default)s)")
        g.add_argument("--auto-augment", default=None, choices=AUTO_AUGMENT,
                       help="an automatic augmentation policy on training images: TrivialAugmentWide, RandAugment or "
                            "AutoAugment's ImageNet policy (default: none)")
        g.add_argument("--random-erase", type=float, default=0.0,
                       help="probability of erasing a random box of each training image (default: %(default)s)")
    parser.set_defaults(**defaults)


def check_recipe_args(args: argparse.Namespace) -> None:
    """Impossible recipe values are a `UserError` before anything is built (common/cli.check_args calls this; it
    checks `--momentum` and `--weight-decay` itself)."""
    rules = [("--lr-warmup-epochs", args.lr_warmup_epochs, args.lr_warmup_epochs is None or args.lr_warmup_epochs >= 0,
              ">= 0"),
             ("--lr-warmup-decay", args.lr_warmup_decay, 0 < args.lr_warmup_decay <= 1, "in (0, 1]"),
             ("--lr-step-size", args.lr_step_size, args.lr_step_size >= 1, ">= 1"),
             ("--lr-gamma", args.lr_gamma, args.lr_gamma > 0, "> 0")]
    if hasattr(args, "label_smoothing"):  # the classification flags
        rules += [("--label-smoothing", args.label_smoothing, 0 <= args.label_smoothing < 1, "in [0, 1)"),
                  ("--mixup-alpha", args.mixup_alpha, args.mixup_alpha >= 0, ">= 0"),
                  ("--cutmix-alpha", args.cutmix_alpha, args.cutmix_alpha >= 0, ">= 0"),
                  ("--random-erase", args.random_erase, 0 <= args.random_erase <= 1, "in [0, 1]")]
    for flag, value, ok, rule in rules:
        if not ok:
            raise UserError(f"{flag} must be {rule}, got {value:g}")
    if args.lr_warmup_epochs is not None and args.lr_warmup_epochs >= args.epochs:
        raise UserError(f"--lr-warmup-epochs {args.lr_warmup_epochs:g} leaves no epoch of --epochs {args.epochs} "
                        "for the schedule")


def build_optimizer(params: Iterable[nn.Parameter] | list[dict[str, Any]], args: argparse.Namespace
                    ) -> torch.optim.Optimizer:
    """`--opt sgd` (with `--momentum`) or `adamw`, at `--lr` and `--weight-decay`. Parameters: only the trainable ones
    (frozen layers, 冻结训练, get no optimizer state); param groups (dicts, e.g. 08's head and backbone LRs) as given."""
    params = list(params)
    if not (params and isinstance(params[0], dict)):
        params = [p for p in params if p.requires_grad]
    if args.opt == "adamw":
        return torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    return torch.optim.SGD(params, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)


def head_backbone_groups(model: nn.Module, head: tuple[str, ...], lr: float, backbone_lr_scale: float
                         ) -> list[dict[str, Any]]:
    """Two param groups over all parameters, for `build_optimizer`: the head (names starting with a `head` prefix) at
    `lr` first (the group whose LR is logged), the backbone at `lr × backbone_lr_scale` (fine-tuning's smaller steps)."""
    params = list(model.named_parameters())
    return [{"params": [p for n, p in params if n.startswith(head)], "lr": lr},
            {"params": [p for n, p in params if not n.startswith(head)], "lr": lr * backbone_lr_scale}]


def build_scheduler(optimizer: torch.optim.Optimizer, args: argparse.Namespace, steps_per_epoch: int = 1
                    ) -> LambdaLR:
    """`--lr-scheduler` after `--lr-warmup-epochs`, as a closed-form `LambdaLR` over `--epochs × steps_per_epoch`
    scheduler steps: `steps_per_epoch` 1 for a schedule stepped per epoch (classification, as torchvision's
    references), the loader's length for one stepped per iteration (segmentation). A warmup of None is the
    segmentation recipe's own: 1 % of the steps (at least 1), from 0.1 × lr."""
    total = args.epochs * steps_per_epoch
    if args.lr_warmup_epochs is None:
        warmup, decay = min(max(1, math.ceil(0.01 * total)), total - 1), 0.1
    else:
        warmup, decay = round(args.lr_warmup_epochs * steps_per_epoch), args.lr_warmup_decay
    factor = functools.partial(schedule.lr_factor, total_steps=total, kind=args.lr_scheduler, warmup_steps=warmup,
                               warmup_method=args.lr_warmup_method, warmup_decay=decay,
                               step_size=args.lr_step_size * steps_per_epoch, gamma=args.lr_gamma)
    return LambdaLR(optimizer, factor)


def build_criterion(args: argparse.Namespace, **kwargs: Any) -> nn.CrossEntropyLoss:
    """Cross-entropy with `--label-smoothing` (kwargs, e.g. `ignore_index`, go to the loss)."""
    return nn.CrossEntropyLoss(label_smoothing=getattr(args, "label_smoothing", 0.0), **kwargs)


def mix_batches(args: argparse.Namespace, num_classes: int
                ) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None:
    """The `--mixup-alpha` / `--cutmix-alpha` batch transform (torchvision.transforms.v2.MixUp / CutMix; one of the two
    per batch when both are on): images and integer labels in, mixed images and soft N×C labels out. None when off."""
    from torchvision.transforms import v2

    mixes = []
    if getattr(args, "mixup_alpha", 0.0) > 0:
        mixes.append(v2.MixUp(alpha=args.mixup_alpha, num_classes=num_classes))
    if getattr(args, "cutmix_alpha", 0.0) > 0:
        mixes.append(v2.CutMix(alpha=args.cutmix_alpha, num_classes=num_classes))
    if not mixes:
        return None
    return mixes[0] if len(mixes) == 1 else v2.RandomChoice(mixes)


def image_augmentations(args: argparse.Namespace, tensor_loader: str | None = None, augment: bool = True
                        ) -> tuple[list[Any], list[Any]]:
    """(PIL-stage transforms, tensor-stage transforms) that `--auto-augment` and `--random-erase` add to a training
    pipeline: the policy before ToTensor (it works on uint8 images), erasing after it, as in torchvision. Both act
    image by image, so a pipeline that augments whole batches on the device (`tensor_loader` names it) refuses them,
    and so does a folder whose augmentation is switched off (`augment` False: --no-augment)."""
    from torchvision import transforms as T

    policy, erase = getattr(args, "auto_augment", None), getattr(args, "random_erase", 0.0)
    if (policy or erase) and not augment:
        raise UserError("--auto-augment / --random-erase are training augmentations: drop them or --no-augment")
    if (policy or erase) and tensor_loader:
        raise UserError(f"--auto-augment / --random-erase transform image by image, and {tensor_loader}")
    policies = {"ta_wide": T.TrivialAugmentWide, "ra": T.RandAugment,
                "autoaugment": lambda: T.AutoAugment(T.AutoAugmentPolicy.IMAGENET)}
    before = [policies[policy]()] if policy else []
    return before, [T.RandomErasing(p=erase)] if erase > 0 else []
