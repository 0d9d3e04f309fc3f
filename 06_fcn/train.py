"""Train FCN-32s/16s/8s on PASCAL VOC2012 (or the built-in synthetic set): the notes' FCN and 跳级结构.

    python 06_fcn/train.py --data synthetic --backbone light --model fcn8s      # offline, a few minutes on a CPU
    python 06_fcn/train.py --download --weights-backbone VGG16_Weights.IMAGENET1K_V1 --device cuda   # VOC, ImageNet VGG16

Cross-entropy with ignore_index=255 (VOC's void borders and the padding), SGD momentum 0.9, weight decay 1e-4, poly LR
(power 0.9) stepped every iteration after a short warmup. TensorBoard: train_loss, lr, test_loss, test_miou,
test_pixel_accuracy (at the label's full resolution).
"""
import argparse
import sys
from pathlib import Path

from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import cli, runtime, seg_train  # noqa: E402
from common.errors import UserError, cli_main  # noqa: E402
from common.seg_train import (add_segmentation_args, crop_size, fit_segmentation,  # noqa: E402
                              segmentation_loaders)
from common.weights import LoadReport, is_weights_name, load_matching, load_weights_arg, resolve_state_dict  # noqa: E402
from model import BACKBONES, MODELS, backbone_state_dict, build_model  # noqa: E402


VOC_CROP_SIZE = 480


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common_args(parser, folder="06_fcn", data_choices=seg_train.DATA_CHOICES, epochs=30, batch_size=8, lr=1e-2)
    parser.add_argument("--model", default="fcn8s", choices=MODELS,
                        help="FCN variant: how many skip connections (32s none, 16s pool4, 8s pool4 + pool3) (default: %(default)s)")
    parser.add_argument("--backbone", default="vgg16", choices=tuple(BACKBONES),
                        help="vgg16: the paper's (ImageNet weights load); light: 1/8 width + BatchNorm, for CPU runs")
    parser.add_argument("--weights-backbone", default=None, metavar="NAME|FILE",
                        help="VGG16 weights, fc6/fc7 convolutionalized: a torchvision name (VGG16_Weights.IMAGENET1K_V1,"
                             " downloaded) or a local file (a torchvision vgg16 state_dict or any checkpoint)")
    add_segmentation_args(parser, VOC_CROP_SIZE)
    return parser


def load_backbone(model: nn.Module, source: str, log) -> LoadReport:
    """VGG16's conv layers and fc6/fc7 (convolutionalized) from a torchvision name (downloaded) or a local file: a
    torchvision `vgg16().state_dict()` or any checkpoint holding them (an FCN's own included; its score layers are
    left out). Shape-matched, with the load report."""
    state = backbone_state_dict(resolve_state_dict(source, flag="--weights-backbone"))
    return load_matching(model, state, log=log, flag="--weights-backbone")


def main(argv: list[str] | None = None) -> dict:
    args = get_args_parser().parse_args(argv)
    crop = crop_size(args, VOC_CROP_SIZE)
    if is_weights_name(args.weights_backbone) and args.backbone != "vgg16":
        raise UserError(f"--weights-backbone {args.weights_backbone} needs --backbone vgg16 (the light backbone has no "
                        "torchvision weights; a local file of light weights works)")
    rt = runtime.setup(args)
    train_loader, val_loader, classes = segmentation_loaders(args, rt, crop)
    model = build_model(args.model, num_classes=len(classes), backbone=args.backbone)
    log = print if rt.is_main else None
    if args.weights_backbone:
        load_backbone(model, args.weights_backbone, log)
    load_weights_arg(model, args, rt)
    return fit_segmentation(model, train_loader, val_loader, args=args, rt=rt, classes=classes, model_name=args.model,
                            model_kwargs={"backbone": args.backbone}, crop_size=crop)

if __name__ == "__main__":
    cli_main(main)
