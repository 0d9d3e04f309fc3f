"""Train MobileNet V1 / V2 (notes: MobileNet) on the synthetic shapes, CIFAR-10 or an ImageFolder such as flower photos.

    python 05_mobilenet/train.py --data synthetic --model mobilenet_v2 --width-mult 0.5   # offline, minutes on a CPU
    python 05_mobilenet/train.py --data imagefolder --data-path data/flower_data --image-size 224 \\
        --weights MobileNet_V2_Weights.IMAGENET1K_V1 --freeze-features                     # fine-tune the new head only

ImageFolder expects `--data-path/train/<class>/*` and `--data-path/val/<class>/*`. `--weights` takes a checkpoint, a
state_dict file or a torchvision weights name; tensors are loaded where name and shape match, so the 1000-class ImageNet
head is skipped and the new `num_classes` head keeps its initialisation. Inputs use ImageNet's mean/std, as the torchvision
weights expect.
"""
import argparse
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import cli, engine, metrics, recipe, runtime  # noqa: E402
from common.classification import add_augment_arg, classification_loaders  # noqa: E402
from common.errors import UserError, cli_main  # noqa: E402
from common.weights import freeze, load_weights_arg  # noqa: E402
from common.complexity import count_params_and_macs  # noqa: E402
from model import MODELS, build_model  # noqa: E402

SYNTHETIC_SIZE = 4000
NATIVE_SIZE = {"synthetic": 32, "cifar10": 32, "imagefolder": 224}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common_args(parser, folder="05_mobilenet", data_choices=("synthetic", "cifar10", "imagefolder"),
                        epochs=10, batch_size=64, lr=0.01)
    parser.add_argument("--model", default="mobilenet_v2", choices=MODELS,
                        help="MobileNet version (default: %(default)s)")
    parser.add_argument("--width-mult", type=float, default=1.0, help="width multiplier α (default: %(default)s)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="input size, the resolution multiplier ρ (default: 32 for synthetic/cifar10, 224 for "
                             "imagefolder)")
    parser.add_argument("--full-conv", action="store_true",
                        help="mobilenet_v1 with standard 3×3 convs instead of depthwise + pointwise (the paper's Table 4 "
                             "baseline)")
    parser.add_argument("--relu6-projection", action="store_true",
                        help="mobilenet_v2 with a ReLU6 after each projection (the linear-bottleneck ablation)")
    parser.add_argument("--freeze-features", action="store_true",
                        help="train only the classifier (the notes' 冻结训练), e.g. after --weights")
    add_augment_arg(parser)
    recipe.add_recipe_args(parser, momentum=0.9, weight_decay=4e-5, lr_scheduler="cosine")
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = get_args_parser().parse_args(argv)
    if args.width_mult <= 0:
        raise UserError(f"--width-mult must be positive, got {args.width_mult}")
    size = args.image_size or NATIVE_SIZE[args.data]
    if size < 32:
        raise UserError(f"--image-size must be at least 32 (MobileNet downsamples by 32), got {size}")
    for flag, on, model in (("--full-conv", args.full_conv, "mobilenet_v1"),
                            ("--relu6-projection", args.relu6_projection, "mobilenet_v2")):
        if on and args.model != model:
            raise UserError(f"{flag} applies to --model {model}, not {args.model}")
    rt = runtime.setup(args)
    train_loader, val_loader, classes, preprocess = classification_loaders(args, rt, size, synthetic_size=SYNTHETIC_SIZE)
    kwargs = {"width_mult": args.width_mult}  # an ablation is stored only when on, so default checkpoints stay as before
    kwargs |= {"separable": False} if args.full_conv else {}
    kwargs |= {"linear_bottleneck": False} if args.relu6_projection else {}
    model = build_model(args.model, num_classes=len(classes), **kwargs)
    if rt.is_main:
        cost = count_params_and_macs(model, size)
        print(f"{args.model} α={args.width_mult}: {cost['params'] / 1e6:.2f}M parameters, "
              f"{cost['macs'] / 1e6:.1f}M mult-adds at {size}x{size}; {len(classes)} classes ({args.data})")
    load_weights_arg(model, args, rt)
    if args.freeze_features:
        freeze(model, ["features."])
    optimizer = recipe.build_optimizer(model.parameters(), args)
    meta = engine.Meta(model_name=args.model, model_kwargs=kwargs, class_names=classes, preprocess=preprocess)
    return engine.fit(model, recipe.build_criterion(args), optimizer, train_loader, val_loader, args=args, rt=rt,
                      metric=metrics.classification_metric(len(classes)), meta=meta,
                      scheduler=recipe.build_scheduler(optimizer, args),
                      batch_transform=recipe.mix_batches(args, len(classes)))


if __name__ == "__main__":
    cli_main(main)
