"""Transfer a trained model to a new (small) task: the notes' 迁移学习 — three methods, 冻结训练 and 断点恢复.

    python 08_transfer/train.py --synthetic-task source --method scratch --output-dir runs/08_source   # a source model
    python 08_transfer/train.py --method finetune --weights runs/08_source/best.pth --freeze-epochs 3  # 20-shot target
    python 08_transfer/train.py --data imagefolder --download --weights ResNet18_Weights.IMAGENET1K_V1 --method freeze

--method
  scratch   every parameter from random initialisation at --lr: the baseline (takes no --weights)
  freeze    Transfer Learning: the whole backbone (every convolutional layer) frozen, only the classifier trains
  features  Extract Feature Vector: the frozen backbone runs once over train and val, the vectors are cached on disk
            (reused while backbone weights and data are unchanged), then the classifier trains on the vectors alone
  finetune  Fine-tuning: the first --freeze-stages K backbone stages frozen, the other stages train at
            --lr × --backbone-lr-scale and the classifier at --lr; --freeze-epochs N first trains the classifier alone
            for N epochs (冻结训练), then unfreezes. --resume continues correctly in either phase.
Frozen stages keep their BatchNorm layers in eval mode (their running statistics stay the source model's too).
"""
import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import cli, engine, metrics, recipe, runtime  # noqa: E402
from common.classification import add_augment_arg, classification_loaders, imagefolder_or_hymenoptera  # noqa: E402
from common.feature_cache import feature_loaders  # noqa: E402
from common.errors import UserError, cli_main  # noqa: E402
from common.synthetic import add_transfer_task_args, transfer_task  # noqa: E402
from common.weights import check_weights_fit, freeze, load_weights_arg, unfreeze  # noqa: E402
from model import HEAD, MODELS, STAGES, HeadOnly, build_model, feature_extractor  # noqa: E402

METHODS = ("scratch", "freeze", "features", "finetune")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common_args(parser, folder="08_transfer", data_choices=("synthetic", "imagefolder"),
                        epochs=15, batch_size=16, lr=1e-2)
    parser.add_argument("--model", default="resnet18", choices=MODELS,
                        help="backbone (tudui: the notes' CIFAR net) (default: %(default)s)")
    parser.add_argument("--method", default="finetune", choices=METHODS,
                        help="how the source model is transferred: see --method above (default: %(default)s)")
    parser.add_argument("--freeze-stages", type=int, default=None, metavar="K",
                        help="finetune: backbone stages frozen throughout, input side first (default: a majority)")
    parser.add_argument("--freeze-epochs", type=int, default=0, metavar="N",
                        help="finetune: train the classifier alone for the first N epochs, then unfreeze (default: 0)")
    parser.add_argument("--backbone-lr-scale", type=float, default=0.1,
                        help="finetune: backbone lr = --lr × this (default: %(default)s)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="input size (default: 224 for imagefolder, 32 for synthetic)")
    add_augment_arg(parser)  # the image methods; features trains on unaugmented vectors
    add_transfer_task_args(parser)  # --synthetic-task source|target, --shots, --val-per-class
    parser.add_argument("--feature-cache", type=Path, default=None,
                        help="features: where cached vectors live (default: <output-dir>/feature_cache)")
    recipe.add_recipe_args(parser, momentum=0.9, weight_decay=1e-4, lr_scheduler="cosine")
    return parser


def check_args(args: argparse.Namespace) -> None:
    """Method/flag combinations that cannot mean what the user wants, before anything is built or written."""
    stages = len(STAGES[args.model])
    if args.method == "scratch" and args.weights:
        raise UserError("--method scratch trains from random initialisation; drop --weights or use --method finetune")
    if args.method != "scratch" and not (args.weights or args.resume):
        raise UserError(f"--method {args.method} transfers a trained model: give --weights (a checkpoint, state_dict "
                        "file or torchvision weights name)")
    if args.method != "finetune" and (args.freeze_stages is not None or args.freeze_epochs):
        raise UserError("--freeze-stages and --freeze-epochs apply to --method finetune only")
    if args.freeze_stages is not None and not 0 <= args.freeze_stages <= stages:
        raise UserError(f"--freeze-stages must be in [0, {stages}] for {args.model}, got {args.freeze_stages}")
    cli.check_at_least({"--freeze-epochs": args.freeze_epochs}, 0)
    cli.check_at_least({"--shots": args.shots, "--val-per-class": args.val_per_class}, 1)
    cli.check_at_least({"--image-size": args.image_size}, 32, "the backbones downsample 32×")
    if not args.backbone_lr_scale > 0:
        raise UserError(f"--backbone-lr-scale must be positive, got {args.backbone_lr_scale}")
    if args.method == "features" and (args.mixup_alpha or args.cutmix_alpha or args.auto_augment or args.random_erase):
        raise UserError("--method features trains on cached vectors: --mixup-alpha, --cutmix-alpha, --auto-augment "
                        "and --random-erase act on images")
    if args.feature_cache is not None:  # before minutes of feature extraction, not after
        cli.ensure_writable_dir(args.feature_cache, "--feature-cache")
    if args.model == "tudui" and args.image_size not in (None, 32):
        raise UserError("--model tudui takes 32×32 inputs only (its Linear1 expects 64×4×4)")
    check_weights_fit(args.weights, args.model)


# ------------------------------------------------------------------------------------------------------ freeze phases
def frozen_stages(args: argparse.Namespace, epoch: int) -> int:
    """How many backbone stages (input side first) are frozen during `epoch` (0-based)."""
    stages = len(STAGES[args.model])
    if args.method == "scratch":
        return 0
    if args.method in ("freeze", "features") or epoch < args.freeze_epochs:
        return stages
    return stages // 2 + 1 if args.freeze_stages is None else args.freeze_stages


def set_frozen(model: nn.Module, name: str, k: int) -> int:
    """Freeze the first `k` backbone stages (requires_grad=False, BatchNorm in eval mode: common/weights.freeze),
    unfreeze everything else. Returns the number of trainable parameters."""
    prefixes = tuple(p for stage in STAGES[name][:k] for p in stage)
    unfreeze(model)
    freeze(model, prefixes)  # no prefixes: nothing frozen
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def make_optimizer(model: nn.Module, name: str, args: argparse.Namespace) -> torch.optim.Optimizer:
    """`--opt` over two groups built once over all parameters: the head at --lr, the backbone at --lr ×
    --backbone-lr-scale for finetune. Frozen parameters get no gradient, and the optimizer skips those (no momentum,
    no weight decay), so the same optimizer (and its --resume state) serves every freeze phase."""
    scale = args.backbone_lr_scale if args.method == "finetune" else 1.0
    return recipe.build_optimizer(recipe.head_backbone_groups(model, tuple(f"{h}." for h in HEAD[name]), args.lr,
                                                              scale), args)


# ----------------------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict:
    args = get_args_parser().parse_args(argv)
    check_args(args)
    rt = runtime.setup(args)
    image_size = args.image_size or (224 if args.data == "imagefolder" else 32)
    if args.data == "imagefolder":  # ImageFolder, or hymenoptera with --download
        train_set, val_set = imagefolder_or_hymenoptera(args.data_path, args.download, args.skip_bad)
    else:  # the source task (--synthetic-size images), or the few-shot target task of shapes new to the source model
        train_set, val_set = transfer_task(args.synthetic_task, image_size, args.seed, shots=args.shots,
                                           source_size=args.synthetic_size or 3000, val_per_class=args.val_per_class)
    classes = train_set.classes
    if rt.is_main:
        print(f"train set: {len(train_set)} images, val set: {len(val_set)} images, {len(classes)} classes "
              f"({args.data}, {rt.device}), --method {args.method}")
    # the image methods' loaders (synthetic: on the device, random shifts of size/8 px and flips), and preprocessing
    train_loader, val_loader, _, preprocess = classification_loaders(
        args, rt, image_size, sets=(train_set, val_set), crop_padding=image_size // 8, drop_last=True)
    model = build_model(args.model, num_classes=len(classes))
    meta = engine.Meta(model_name=args.model, class_names=list(classes), preprocess=preprocess,
                       extra={"method": args.method, "freeze_epochs": args.freeze_epochs,
                              "freeze_stages": frozen_stages(args, args.epochs - 1), "weights": args.weights})
    if rt.resume is not None:  # now already: the features method extracts vectors before fit restores the run
        engine.check_resumable(rt.resume, meta, args, same_flags=("method",))
        engine.load_weights(rt.resume, model, args.resume)
    load_weights_arg(model, args, rt)  # shape-matched; report printed and saved as weights_report.json
    optimizer = make_optimizer(model, args.model, args)
    phase = {}

    def on_epoch_start(epoch: int, net: nn.Module, opt: torch.optim.Optimizer) -> None:
        k = frozen_stages(args, epoch)
        if phase.get("k") != k:
            phase.update(k=k, trainable=set_frozen(model, args.model, k))
            if rt.is_main:
                print(f"epoch {epoch + 1}: {k}/{len(STAGES[args.model])} backbone stages frozen, "
                      f"{phase['trainable']:,} trainable parameters", flush=True)

    summary, net = {}, model
    if args.method == "features":  # Extract Feature Vector: the frozen backbone once, then the head on the vectors
        set_frozen(model, args.model, len(STAGES[args.model]))
        train_loader, val_loader, summary["feature_cache"] = feature_loaders(
            model, feature_extractor(model, args.model), args.model, tuple(f"{h}." for h in HEAD[args.model]),
            {"train": train_set, "val": val_set}, preprocess, args, rt)
        net = HeadOnly(model, args.model)
    summary.update(engine.fit(net, recipe.build_criterion(args), optimizer, train_loader, val_loader, args=args, rt=rt,
                              metric=metrics.classification_metric(len(classes)), meta=meta,
                              scheduler=recipe.build_scheduler(optimizer, args), on_epoch_start=on_epoch_start,
                              batch_transform=recipe.mix_batches(args, len(classes))))
    summary["trainable_params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return summary


if __name__ == "__main__":
    cli_main(main)
