"""Train the dilated-convolution segmentation net (notes: 膨胀卷积) on the synthetic set or PASCAL VOC2012.

    python 04_dilated_conv/train.py --model hdc          # rates 1, 2, 5: no gridding (offline, synthetic data)
    python 04_dilated_conv/train.py --model gridding     # rates 2, 2, 2: the same parameters, with holes
    python 04_dilated_conv/train.py --model downsample   # stride 2 instead of dilation: the same parameters, coarser map

Cross-entropy with ignore_index=255, SGD momentum 0.9, weight decay 1e-4, poly LR (power 0.9) per iteration after a short
warmup; TensorBoard: train_loss, lr, test_loss, test_miou, test_pixel_accuracy.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import cli, runtime, seg_train  # noqa: E402
from common.errors import UserError, cli_main  # noqa: E402
from common.seg_train import (add_segmentation_args, crop_size, fit_segmentation,  # noqa: E402
                              segmentation_loaders)
from common.weights import load_weights_arg  # noqa: E402
from model import MODELS, build_model  # noqa: E402


VOC_CROP_SIZE = 480


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common_args(parser, folder="04_dilated_conv", data_choices=seg_train.DATA_CHOICES, default_data="synthetic",
                        epochs=10, batch_size=16, lr=5e-2)
    parser.add_argument("--model", default="hdc", choices=MODELS,
                        help="dilation pattern: hdc = rates 1,2,5 (HDC), gridding = 2,2,2, downsample = no dilation (default: %(default)s)")
    parser.add_argument("--width", type=int, default=32, help="channels of every body conv (default: %(default)s)")
    parser.add_argument("--groups", type=int, default=2,
                        help="repetitions of the three-conv group (default: %(default)s)")
    add_segmentation_args(parser, VOC_CROP_SIZE)
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = get_args_parser().parse_args(argv)
    crop = crop_size(args, VOC_CROP_SIZE)
    for flag, value in {"--width": args.width, "--groups": args.groups}.items():
        if value < 1:
            raise UserError(f"{flag} must be at least 1, got {value}")
    if args.width % 2:
        raise UserError(f"--width must be even (the stem has width / 2 channels), got {args.width}")
    rt = runtime.setup(args)
    train_loader, val_loader, classes = segmentation_loaders(args, rt, crop)
    kwargs = {"width": args.width, "groups": args.groups}
    model = build_model(args.model, num_classes=len(classes), **kwargs)
    if rt.is_main:
        print(f"{args.model}: {sum(p.numel() for p in model.parameters()):,} parameters")
    load_weights_arg(model, args, rt)
    return fit_segmentation(model, train_loader, val_loader, args=args, rt=rt, classes=classes, model_name=args.model,
                            model_kwargs=kwargs, crop_size=crop)

if __name__ == "__main__":
    cli_main(main)
