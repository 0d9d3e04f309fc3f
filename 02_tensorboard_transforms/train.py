"""Train a small classifier through a transforms pipeline and log it to TensorBoard: the notes' tensorboard + transforms.

    python 02_tensorboard_transforms/train.py --data synthetic
    python 02_tensorboard_transforms/train.py --data imagefolder --data-path data/hymenoptera_data --image-size 96
    tensorboard --logdir runs/02_tensorboard_transforms

Training images go through augmentation, evaluation images through fixed preprocessing (the classic Resize(256) +
RandomCrop/CenterCrop(224) recipe, scaled to --image-size), both built from the notes' transforms:
  train  Resize(R) → RandomCrop(S) → RandomHorizontalFlip → ToTensor → Normalize([0.5]*3, [0.5]*3)
  eval   Resize(R) → CenterCrop(S) → ToTensor → Normalize([0.5]*3, [0.5]*3)          (R = S × 8/7, short side)
TensorBoard gets the loop's scalars (train_loss, lr, test_loss, test_accuracy), the same images through both pipelines
(inputs/train_augmented, inputs/eval), the model graph, and a histogram of every weight tensor before and after training.
"""
import argparse
import sys
import warnings
from pathlib import Path

import torch
import torchvision
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import cli, data, engine, metrics, recipe, runtime  # noqa: E402
from common.errors import UserError, cli_main  # noqa: E402
from common.classification import load_imagefolder  # noqa: E402
from common.synthetic import SyntheticShapes  # noqa: E402
from common.weights import load_weights_arg  # noqa: E402
from model import MODELS, build_model  # noqa: E402

MEAN = STD = [0.5, 0.5, 0.5]
SYNTHETIC_SIZE = 2000
GRID_IMAGES = 32


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common_args(parser, folder="02_tensorboard_transforms", data_choices=("imagefolder", "synthetic"),
                        default_data="synthetic", epochs=5, batch_size=64, lr=0.05)
    parser.add_argument("--model", default="convnet", choices=MODELS,
                        help="the network (default: %(default)s)")
    parser.add_argument("--image-size", type=int, default=32, help="S, the size the network sees (default: %(default)s)")
    recipe.add_recipe_args(parser, momentum=0.9, weight_decay=5e-4, lr_scheduler="cosine")
    return parser


MAX_IMAGE_SIZE = 1024  # the notes' recipe is 224; 100000 asked for a 195 GiB allocation


def resize_size(image_size: int) -> int:
    """R: the short side before cropping, S × 8/7 rounded (256 for 224, 37 for 32)."""
    return round(image_size * 8 / 7)


def build_transforms(image_size: int, policy: list | None = None, erase: list | None = None
                     ) -> tuple[transforms.Compose, transforms.Compose]:
    """(train, eval) pipelines. Resize(int) scales the short side and keeps the aspect ratio (the notes' Resize2);
    the crop then makes every image S×S so they stack into a batch. `policy` / `erase`: --auto-augment and
    --random-erase (common/recipe.py), before and after ToTensor."""
    to_tensor = [transforms.ToTensor(), transforms.Normalize(MEAN, STD)]  # [0, 1] → [-1, 1]
    resize = transforms.Resize(resize_size(image_size))
    train = transforms.Compose([resize, transforms.RandomCrop(image_size), transforms.RandomHorizontalFlip(),
                                *(policy or []), *to_tensor, *(erase or [])])
    evaluation = transforms.Compose([resize, transforms.CenterCrop(image_size), *to_tensor])
    return train, evaluation


def load_data(args: argparse.Namespace) -> tuple[object, object, list[str]]:
    """Data sets returning PIL images (the transforms are attached later)."""
    if args.data == "synthetic":
        n = args.synthetic_size or SYNTHETIC_SIZE
        size = resize_size(args.image_size)  # drawn at R, so Resize is a no-op and the crops do the work
        train = SyntheticShapes(n, image_size=size, seed=args.seed, split="train")
        return train, SyntheticShapes(max(n // 4, 1), image_size=size, seed=args.seed, split="test"), train.classes
    for split in ("train", "val"):
        if not (args.data_path / split).is_dir():
            raise UserError(f"{args.data_path / split} not found: --data imagefolder reads <data-path>/train/<class>/*.jpg "
                            "and <data-path>/val/<class>/*.jpg (e.g. --data-path data/hymenoptera_data from "
                            "01_dataset/train.py --data imagefolder --download)")
    train, val = load_imagefolder(args.data_path, skip_bad=args.skip_bad)
    return train, val, train.classes


def unnormalize(x: torch.Tensor) -> torch.Tensor:
    """Undo Normalize(0.5, 0.5) for display: [-1, 1] → [0, 1]."""
    return x * torch.tensor(STD).view(-1, 1, 1) + torch.tensor(MEAN).view(-1, 1, 1)


def log_inputs_and_graph(writer: SummaryWriter, model: nn.Module, samples: list, train_tf: transforms.Compose,
                         eval_tf: transforms.Compose) -> None:
    """The same images through both pipelines, side by side in the Images tab, and the model graph (traced in eval mode,
    so tracing does not touch BatchNorm's running statistics)."""
    augmented = torch.stack([train_tf(img) for img in samples])
    plain = torch.stack([eval_tf(img) for img in samples])
    writer.add_image("inputs/train_augmented", torchvision.utils.make_grid(unnormalize(augmented), nrow=8), 0)
    writer.add_image("inputs/eval", torchvision.utils.make_grid(unnormalize(plain), nrow=8), 0)
    model.eval()
    with warnings.catch_warnings():  # add_graph still traces with torch.jit, which warns that it is deprecated
        warnings.simplefilter("ignore", FutureWarning)
        writer.add_graph(model, plain[:1])
    model.train()


def log_weights(writer: SummaryWriter, model: nn.Module, step: int) -> None:
    for name, param in model.named_parameters():
        writer.add_histogram(f"weights/{name}", param.detach().float().cpu(), step)


def main(argv: list[str] | None = None) -> dict:
    args = get_args_parser().parse_args(argv)
    if not 8 <= args.image_size <= MAX_IMAGE_SIZE:
        raise UserError(f"--image-size must be between 8 and {MAX_IMAGE_SIZE}, got {args.image_size}")
    rt = runtime.setup(args)
    train_set, val_set, classes = load_data(args)
    if rt.is_main:
        print(f"train set: {len(train_set)} images, test set: {len(val_set)} images ({args.data}, {rt.device})")
    train_tf, eval_tf = build_transforms(args.image_size, *recipe.image_augmentations(args))
    step = len(train_set) // min(GRID_IMAGES, len(train_set))
    samples = [train_set[i * step][0] for i in range(min(GRID_IMAGES, len(train_set)))]
    train_set.transform, val_set.transform = train_tf, eval_tf
    train_loader, val_loader = data.make_loaders(train_set, val_set, args, rt)
    model = build_model(args.model, num_classes=len(classes))
    load_weights_arg(model, args, rt)
    optimizer = recipe.build_optimizer(model.parameters(), args)
    scheduler = recipe.build_scheduler(optimizer, args)
    meta = engine.Meta(model_name=args.model, class_names=classes,
                       preprocess={"resize": resize_size(args.image_size), "crop": [args.image_size] * 2,
                                   "mean": MEAN, "std": STD})
    # Our own event files sit beside the loop's, written only before and after fit: TensorBoard's reader expects at
    # most the newest file in a folder to be growing, so nothing is written here while the loop's file is open.
    if rt.resume is not None:
        engine.check_resumable(rt.resume, meta, args)  # before the first event file, not inside fit after it
    if rt.is_main and not args.test_only:
        with SummaryWriter(log_dir=str(runtime.prepare_output(args, rt))) as writer:
            log_inputs_and_graph(writer, model, samples, train_tf, eval_tf)
            if rt.resume is None:  # after a resume, the first run already logged the initial weights
                log_weights(writer, model, 0)
    summary = engine.fit(model, recipe.build_criterion(args), optimizer, train_loader, val_loader, args=args, rt=rt,
                         metric=metrics.classification_metric(len(classes)), meta=meta, scheduler=scheduler,
                         batch_transform=recipe.mix_batches(args, len(classes)))
    if rt.is_main and not args.test_only:
        with SummaryWriter(log_dir=str(args.output_dir)) as writer:
            log_weights(writer, model, args.epochs)
    return summary


if __name__ == "__main__":
    cli_main(main)
