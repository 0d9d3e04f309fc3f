"""Train DeepLab V1/V2/V3/V3+ on PASCAL VOC2012 (or the built-in synthetic set): the notes' Deeplab and 膨胀卷积.

    python 07_deeplab/train.py --data synthetic --model deeplabv3plus --backbone resnet18    # offline, CPU
    python 07_deeplab/train.py --download --model deeplabv3 --device cuda \
        --weights-backbone ResNet101_Weights.IMAGENET1K_V1

Cross-entropy with ignore_index=255, SGD momentum 0.9, weight decay 1e-4, poly LR (power 0.9) per iteration after a
short warmup (common/segmentation.py). `--aux` adds an FCN head on the stride-16 stage whose loss counts
`--aux-weight` times. TensorBoard: train_loss, lr, test_loss, test_miou, test_pixel_accuracy (mIoU at the label's
resolution: 上采样后才进行IOU计算).
"""
import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import cli, runtime, seg_train, segmentation  # noqa: E402
from common.errors import UserError, cli_main  # noqa: E402
from common.seg_train import (add_segmentation_args, crop_size, fit_segmentation,  # noqa: E402
                              segmentation_loaders)
from common.weights import is_weights_name, load_matching, load_weights_arg, resolve_state_dict, sub_state_dict  # noqa: E402
from model import BACKBONES, DEFAULTS, HEAD_RATES, MODELS, build_model  # noqa: E402

WEIGHTS_PREFIX = {"vgg16": "VGG16_Weights.", "resnet18": "ResNet18_Weights.", "resnet50": "ResNet50_Weights.",
                  "resnet101": "ResNet101_Weights."}


VOC_CROP_SIZE = 513  # the DeepLab papers' VOC crop


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common_args(parser, folder="07_deeplab", data_choices=seg_train.DATA_CHOICES, epochs=30, batch_size=8,
                        lr=1e-2)
    parser.add_argument("--model", default="deeplabv3plus", choices=MODELS,
                        help="DeepLab version (default: %(default)s)")
    parser.add_argument("--backbone", default=None, choices=BACKBONES,
                        help="default: the paper's (vgg16 for V1, resnet101 for V2/V3/V3+); resnet18 is the light one")
    parser.add_argument("--output-stride", type=int, default=None, choices=(8, 16),
                        help="default: 8 for V1/V2, 16 for V3/V3+ (atrous rates scale with it)")
    parser.add_argument("--multi-grid", type=int, nargs="+", default=None, metavar="R",
                        help="V3/V3+ unit rates of the last block, times its base rate (default: 1 2 4)")
    parser.add_argument("--atrous-rates", type=int, nargs="+", default=None, metavar="R",
                        help="the head's atrous rates instead of the published ones (V1: 1 rate, V2: 4, V3/V3+: 3), "
                             "e.g. scaled to a small image's feature map")
    parser.add_argument("--aux", action="store_true", help="auxiliary FCN head on the stride-16 stage")
    parser.add_argument("--aux-weight", type=float, default=0.4,
                        help="weight of the auxiliary loss (default: %(default)s)")
    parser.add_argument("--weights-backbone", default=None, metavar="NAME|FILE",
                        help="ImageNet weights for the backbone: a torchvision name such as "
                             "ResNet101_Weights.IMAGENET1K_V1 (downloaded), or a local file (a torchvision "
                             "state_dict or any checkpoint), loaded by name and shape with a report; VGG16's fc6/fc7 "
                             "are decimated into LargeFOV's fc6/fc7 for V1")
    add_segmentation_args(parser, VOC_CROP_SIZE)
    return parser


def decimate_vgg_fc(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """LargeFOV's fc6/fc7 (`model.head` keys) from VGG16's classifier, as DeepLab-LargeFOV initialised them: every 4th
    of the 4096 channels (→ 1024) and every 3rd tap of fc6's 7×7 kernel (→ 3×3). Taps 0, 3, 6 of a 7×7 at dilation 4
    sit at offsets −12, 0, +12: exactly a 3×3 at dilation 12."""
    fc6 = state["classifier.0.weight"].view(4096, 512, 7, 7)[::4, :, ::3, ::3]
    fc7 = state["classifier.3.weight"].view(4096, 4096, 1, 1)[::4, ::4]
    return {"0.weight": fc6.contiguous(), "0.bias": state["classifier.0.bias"][::4].contiguous(),
            "3.weight": fc7.contiguous(), "3.bias": state["classifier.3.bias"][::4].contiguous()}


def load_backbone_weights(model: torch.nn.Module, source: str, backbone: str, log) -> None:
    """ImageNet weights into `model.backbone` (torchvision's parameter names), shape-matched with the load report:
    a torchvision weights name (downloaded) or a local file (`torch.save(torchvision.models.resnet101(weights=...)
    .state_dict(), path)`, or any checkpoint; a whole-model checkpoint contributes its `backbone.` part). For V1 on
    VGG16, fc6/fc7 are decimated into LargeFOV's head when the file has VGG's classifier."""
    state = sub_state_dict(resolve_state_dict(source, flag="--weights-backbone"), "backbone.")
    load_matching(model.backbone, state, log=log, flag="--weights-backbone")
    if model.version == "deeplabv1" and backbone == "vgg16" and "classifier.0.weight" in state:
        load_matching(model.head, decimate_vgg_fc(state), log=log, flag="--weights-backbone")


def make_criterion(aux_weight: float):
    """Cross-entropy ignoring 255; in training a model with an aux head returns (main, aux) and both count."""
    def criterion(output, target: torch.Tensor) -> torch.Tensor:
        if isinstance(output, tuple):
            main, aux = output
            return (F.cross_entropy(main, target, ignore_index=segmentation.IGNORE_INDEX)
                    + aux_weight * F.cross_entropy(aux, target, ignore_index=segmentation.IGNORE_INDEX))
        return F.cross_entropy(output, target, ignore_index=segmentation.IGNORE_INDEX)
    return criterion


def main(argv: list[str] | None = None) -> dict:
    args = get_args_parser().parse_args(argv)
    crop = crop_size(args, VOC_CROP_SIZE)
    backbone = args.backbone or DEFAULTS[args.model][0]
    if args.multi_grid is not None and args.model not in ("deeplabv3", "deeplabv3plus"):
        raise UserError("--multi-grid is a DeepLab V3/V3+ option")
    if args.multi_grid is not None and min(args.multi_grid) < 1:
        raise UserError(f"--multi-grid rates must be at least 1, got {args.multi_grid}")
    if args.atrous_rates is not None and (len(args.atrous_rates) != len(HEAD_RATES[args.model][0])
                                          or min(args.atrous_rates) < 1):
        raise UserError(f"--atrous-rates for {args.model} takes {len(HEAD_RATES[args.model][0])} rate(s) of at least "
                        f"1, got {args.atrous_rates}")
    if args.batch_size == 1 and args.model in ("deeplabv3", "deeplabv3plus"):  # below 1: cli.check_args says so
        raise UserError(f"--batch-size 1 cannot train {args.model}: the BatchNorm after image pooling sees one value "
                        "per channel; use --batch-size 2 or more")
    if args.aux_weight < 0:
        raise UserError(f"--aux-weight must be >= 0, got {args.aux_weight}")
    if is_weights_name(args.weights_backbone) and backbone not in WEIGHTS_PREFIX:
        raise UserError(f"--backbone {backbone} has no torchvision weights; --weights-backbone takes a local file of it")
    if is_weights_name(args.weights_backbone) and not args.weights_backbone.startswith(WEIGHTS_PREFIX[backbone]):
        raise UserError(f"--weights-backbone {args.weights_backbone} does not fit --backbone {backbone} "
                        f"(expected {WEIGHTS_PREFIX[backbone]}<version>, e.g. {WEIGHTS_PREFIX[backbone]}IMAGENET1K_V1)")
    rt = runtime.setup(args)
    # drop_last: a last batch of one image would break BatchNorm (image pooling) and gives a noisy step anyway.
    train_loader, val_loader, classes = segmentation_loaders(args, rt, crop, drop_last=True)
    if len(train_loader) == 0:
        raise UserError(f"{len(train_loader.dataset)} training images are fewer than one batch of {args.batch_size} "
                        "per process")
    kwargs = {"backbone": backbone, "output_stride": args.output_stride, "aux": args.aux}
    for key in ("multi_grid", "atrous_rates"):
        if getattr(args, key) is not None:
            kwargs[key] = list(getattr(args, key))
    model = build_model(args.model, num_classes=len(classes), **kwargs)
    log = print if rt.is_main else None
    if args.weights_backbone:
        load_backbone_weights(model, args.weights_backbone, backbone, log)
    load_weights_arg(model, args, rt)
    return fit_segmentation(model, train_loader, val_loader, args=args, rt=rt, classes=classes, model_name=args.model,
                            model_kwargs={**kwargs, "output_stride": model.output_stride}, crop_size=crop,
                            criterion=make_criterion(args.aux_weight))

if __name__ == "__main__":
    cli_main(main)
