"""Train the notes' Tudui network on CIFAR-10 (or the built-in synthetic set): the notes' 完整项目代码 and gpu版本.

    python 03_cifar_train/train.py --data synthetic                # offline, ~1 minute on a laptop CPU
    python 03_cifar_train/train.py --download --device cuda        # real CIFAR-10 on a GPU
    torchrun --nproc_per_node=2 03_cifar_train/train.py --data synthetic --device cpu

Defaults are the notes': SGD, lr 1e-2, batch 64, 10 epochs; TensorBoard tags train_loss, test_loss, test_accuracy under
--output-dir. Inputs get the notes' Normalize([0.5]*3, [0.5]*3) after ToTensor (the transforms section): without it this
activation-free net trains slowly and, on the synthetic set, can diverge; --no-normalize is the 完整项目代码 exactly.
"""
import argparse
import sys
from pathlib import Path

import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import cli, data, engine, metrics, recipe, runtime  # noqa: E402
from common.checkpoint import save_checkpoint  # noqa: E402
from common.classification import load_cifar10  # noqa: E402
from common.errors import cli_main  # noqa: E402
from common.synthetic import SyntheticShapes  # noqa: E402
from common.tensor_loader import TensorLoader  # noqa: E402
from common.weights import load_weights_arg  # noqa: E402
from model import MODELS, build_model  # noqa: E402

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SYNTHETIC_SIZE = 12000


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common_args(parser, folder="03_cifar_train", data_choices=("cifar10", "synthetic"),
                        epochs=10, batch_size=64, lr=1e-2)
    parser.add_argument("--model", default="tudui", choices=MODELS,
                        help="the notes' Tudui CIFAR-10 network (搭建网络) (default: %(default)s)")
    parser.add_argument("--loader", default="tensor", choices=("tensor", "dataloader"),
                        help="tensor: images held in (GPU) memory, batched and augmented on the device (fast); "
                             "dataloader: the notes' DataLoader + ToTensor path (default: %(default)s)")
    parser.add_argument("--augment", action="store_true",
                        help="random crop (4 px padding) + horizontal flip; the notes train without augmentation")
    parser.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=True,
                        help="Normalize([0.5]*3, [0.5]*3) after ToTensor (default: on)")
    parser.add_argument("--save-full-model", action="store_true",
                        help="also write the notes' method 1, torch.save(model), as tudui_method1.pth (see README)")
    recipe.add_recipe_args(parser, momentum=0.0)  # the notes: torch.optim.SGD(tudui.parameters(), lr=learning_rate)
    return parser


def load_data(args: argparse.Namespace) -> tuple[object, object, list[str]]:
    if args.data == "cifar10":
        train, test = load_cifar10(args.data_path, args.download)
        return train, test, CIFAR10_CLASSES
    n = args.synthetic_size or SYNTHETIC_SIZE
    train = SyntheticShapes(n, seed=args.seed, split="train")
    return train, SyntheticShapes(max(n // 4, 1), seed=args.seed, split="test"), train.classes


def make_loaders(train_set, test_set, args: argparse.Namespace, rt: runtime.Runtime):
    """Both loaders yield the same tensors: float images (ToTensor, then Normalize unless --no-normalize), int64 labels."""
    mean, std = ([0.5] * 3, [0.5] * 3) if args.normalize else (None, None)
    policy, erase = recipe.image_augmentations(args, "--loader tensor augments whole batches on the device: add "
                                                     "--loader dataloader" if args.loader == "tensor" else None)
    if args.loader == "tensor":
        shard = dict(device=rt.device, seed=args.seed, rank=rt.rank, world_size=rt.world_size, mean=mean, std=std)
        train = TensorLoader(train_set.data, train_set.targets, args.batch_size, train=True, drop_last=False,
                             crop_padding=4 if args.augment else 0, flip=args.augment, **shard)
        test = TensorLoader(test_set.data, test_set.targets, args.eval_batch_size or 2 * args.batch_size,
                            train=False, **shard)
        return train, test
    augment = [torchvision.transforms.RandomCrop(32, padding=4),
               torchvision.transforms.RandomHorizontalFlip()] if args.augment else []
    to_tensor = [torchvision.transforms.ToTensor()]
    if args.normalize:
        to_tensor.append(torchvision.transforms.Normalize(mean, std))
    train_set.transform = torchvision.transforms.Compose([*augment, *policy, *to_tensor, *erase])
    test_set.transform = torchvision.transforms.Compose(to_tensor)
    return data.make_loaders(train_set, test_set, args, rt)


def main(argv: list[str] | None = None) -> dict:
    args = get_args_parser().parse_args(argv)
    rt = runtime.setup(args)
    train_set, test_set, classes = load_data(args)
    if rt.is_main:
        print(f"train set: {len(train_set)} images, test set: {len(test_set)} images ({args.data}, {rt.device})")
    train_loader, test_loader = make_loaders(train_set, test_set, args, rt)
    model = build_model(args.model, num_classes=len(classes))
    load_weights_arg(model, args, rt)
    optimizer = recipe.build_optimizer(model.parameters(), args)
    meta = engine.Meta(model_name=args.model, class_names=classes,
                       preprocess={"resize": [32, 32], "mean": [0.5] * 3 if args.normalize else None,
                                   "std": [0.5] * 3 if args.normalize else None})
    summary = engine.fit(model, recipe.build_criterion(args), optimizer, train_loader, test_loader,
                         args=args, rt=rt, metric=metrics.classification_metric(len(classes)), meta=meta,
                         scheduler=recipe.build_scheduler(optimizer, args),
                         batch_transform=recipe.mix_batches(args, len(classes)))
    if args.save_full_model and rt.is_main and not args.test_only:
        model.class_names, model.preprocess = classes, meta.preprocess  # predict.py --unsafe-pickle reads these
        save_checkpoint(model.cpu(), args.output_dir / "tudui_method1.pth")
    return summary


if __name__ == "__main__":
    cli_main(main)
