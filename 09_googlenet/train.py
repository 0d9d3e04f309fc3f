"""Train GoogLeNet (notes: GoogleNet) with its two auxiliary classifiers on synthetic shapes, CIFAR-10 or an ImageFolder.

    python 09_googlenet/train.py --data synthetic --epochs 5                     # paper variant (5×5), offline
    python 09_googlenet/train.py --data synthetic --no-aux                       # without the auxiliary classifiers
    python 09_googlenet/train.py --data imagefolder --data-path data/flower_data --image-size 224 \\
        --torchvision-compat --weights GoogLeNet_Weights.IMAGENET1K_V1 --freeze-features

Training loss = CE(main) + --aux-weight × (CE(aux1) + CE(aux2)) (0.3, as in the paper); evaluation and predict.py use the
main logits only. ImageFolder expects `--data-path/train/<class>/*` and `--data-path/val/<class>/*`. torchvision's ImageNet
weights fit only `--torchvision-compat` (3×3 in the third branch) and expect `transform_input` (switched on automatically
for a GoogLeNet_Weights name). Tensors are loaded where name and shape match, so a new `num_classes` head (and new aux
heads) keep their initialisation.
"""
import argparse
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import cli, engine, metrics, recipe, runtime  # noqa: E402
from common.classification import add_augment_arg, classification_loaders  # noqa: E402
from common.errors import UserError, cli_main  # noqa: E402
from common.weights import freeze, is_weights_name, load_weights_arg  # noqa: E402
from model import MODELS, GoogLeNetLoss, build_model  # noqa: E402

SYNTHETIC_SIZE = 4000
NATIVE_SIZE = {"synthetic": 32, "cifar10": 32, "imagefolder": 224}
FEATURE_PREFIXES = ["conv1.", "conv2.", "conv3.", "inception"]  # everything but the classifier and aux heads


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common_args(parser, folder="09_googlenet", data_choices=("synthetic", "cifar10", "imagefolder"),
                        epochs=10, batch_size=64, lr=0.01)
    parser.add_argument("--model", default="googlenet", choices=MODELS,
                        help="the network (default: %(default)s)")
    parser.add_argument("--aux", action=argparse.BooleanOptionalAction, default=True,
                        help="train with the two auxiliary classifiers (default: on)")
    parser.add_argument("--aux-weight", type=float, default=0.3, help="weight of each aux loss (default: %(default)s)")
    parser.add_argument("--torchvision-compat", action="store_true",
                        help="torchvision's variant (3×3, not 5×5, in the third branch): its weights load strictly")
    parser.add_argument("--transform-input", action=argparse.BooleanOptionalAction, default=None,
                        help="rescale ImageNet-normalised input as the ported weights expect (default: on exactly when "
                             "--weights is a GoogLeNet_Weights name)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="input size (default: 32 for synthetic/cifar10, 224 for imagefolder; at least 15)")
    parser.add_argument("--freeze-features", action="store_true",
                        help="train only the classifier and aux heads (the notes' 冻结训练), e.g. after --weights")
    add_augment_arg(parser)
    recipe.add_recipe_args(parser, momentum=0.9, weight_decay=1e-4, lr_scheduler="cosine")
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = get_args_parser().parse_args(argv)
    size = args.image_size or NATIVE_SIZE[args.data]
    if size < 15:
        raise UserError(f"--image-size must be at least 15 (GoogLeNet downsamples by 32 with ceil mode), got {size}")
    if args.aux_weight < 0:
        raise UserError(f"--aux-weight must be >= 0, got {args.aux_weight}")
    torchvision_name = is_weights_name(args.weights) and str(args.weights).startswith("GoogLeNet_Weights.")
    if torchvision_name and not args.torchvision_compat:
        raise UserError(f"--weights {args.weights} has 3×3 kernels in the third Inception branch; add "
                        "--torchvision-compat (the paper variant uses 5×5)")
    rt = runtime.setup(args)
    train_loader, val_loader, classes, preprocess = classification_loaders(args, rt, size, synthetic_size=SYNTHETIC_SIZE)
    kwargs = {"aux_logits": args.aux, "torchvision_compat": args.torchvision_compat,
              "transform_input": torchvision_name if args.transform_input is None else args.transform_input}
    model = build_model(args.model, num_classes=len(classes), **kwargs)
    if rt.is_main:
        params = sum(p.numel() for p in model.parameters())
        print(f"{args.model} {kwargs}: {params / 1e6:.2f}M parameters; {len(classes)} classes ({args.data}, {size}px)")
    load_weights_arg(model, args, rt)
    if args.freeze_features:
        freeze(model, FEATURE_PREFIXES)
    optimizer = recipe.build_optimizer(model.parameters(), args)
    meta = engine.Meta(model_name=args.model, model_kwargs=kwargs, class_names=classes, preprocess=preprocess)
    return engine.fit(model, GoogLeNetLoss(args.aux_weight, args.label_smoothing), optimizer, train_loader, val_loader,
                      args=args, rt=rt, metric=metrics.classification_metric(len(classes)), meta=meta,
                      scheduler=recipe.build_scheduler(optimizer, args),
                      batch_transform=recipe.mix_batches(args, len(classes)))


if __name__ == "__main__":
    cli_main(main)
