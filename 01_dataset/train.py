"""Train a small CNN on ants vs bees from image folders: the notes' 数据集Dataset导入, 标注标签 and DataLoader (testloader).

    python 01_dataset/train.py --data synthetic                          # offline: writes a notes-layout set, then trains
    python 01_dataset/train.py --data imagefolder --download             # the PyTorch tutorial's hymenoptera ants/bees
    python 01_dataset/train.py --data notes-layout --labels files        # your data/dataset/{train,val}/ants_image, ...

Each class folder is one `MyData` (dataset.py); the training set is their `ConcatDataset`, as in the notes
(`train_dataset = ants_dataset + bees_dataset`). Layouts, under --data-path:
  notes-layout   dataset/{train,val}/{ants_image,ants_label,bees_image,bees_label}  (labels from folder or --labels files)
  imagefolder    hymenoptera_data/{train,val}/{ants,bees}   (--download fetches it)
  synthetic      written to <output-dir>/dataset in the notes' layout (discs are "ants", squares "bees"), then read as above
"""
import argparse
import shutil
import sys
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import ConcatDataset, DataLoader, Dataset, DistributedSampler
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import cli, engine, metrics, recipe, runtime  # noqa: E402
from common.classification import fetch_hymenoptera  # noqa: E402
from common.distributed import ShardSampler  # noqa: E402
from common.errors import UserError, cli_main  # noqa: E402
from common.synthetic import SyntheticShapes  # noqa: E402
from common.weights import load_weights_arg  # noqa: E402
from dataset import IMAGE_SUFFIX, LABEL_SUFFIX, LabelFileData, MyData, label_from_folder  # noqa: E402
from make_labels import make_labels  # noqa: E402
from model import MODELS, build_model  # noqa: E402

SYNTHETIC_CLASSES = ("ants", "bees")  # SyntheticShapes' first two classes: disk, square
SYNTHETIC_SIZE = 400
MEAN = STD = [0.5, 0.5, 0.5]


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common_args(parser, folder="01_dataset", data_choices=("notes-layout", "imagefolder", "synthetic"),
                        epochs=10, batch_size=16, lr=1e-2)
    parser.add_argument("--model", default="smallcnn", choices=MODELS,
                        help="the network (the notes' 01 uses a small CNN) (default: %(default)s)")
    parser.add_argument("--labels", default="folder", choices=("folder", "files"),
                        help="folder: label = folder name (MyData); files: <class>_label/<stem>.txt (标注标签), "
                             "notes layout only (default: %(default)s)")
    parser.add_argument("--image-size", type=int, default=64, help="images are resized to S×S (default: %(default)s)")
    loader = parser.add_argument_group("DataLoader (the notes' testloader line; -b is batch_size, -j num_workers)")
    loader.add_argument("--shuffle", action=argparse.BooleanOptionalAction, default=True,
                        help="shuffle: draw the training images in a new random order every epoch (default: on)")
    loader.add_argument("--drop-last", action="store_true",
                        help="drop_last: drop the final batch when it has fewer than batch_size images")
    recipe.add_recipe_args(parser, momentum=0.9)  # the notes' SGD(lr=0.01, momentum=0.9), no decay, no schedule
    return parser


def write_synthetic(root: Path, size: int, image_size: int, seed: int) -> None:
    """Write SyntheticShapes' discs and squares as `root/{train,val}/{ants,bees}_image/*.png` plus their label files, so
    the real MyData / LabelFileData path is what trains. Only a folder this function wrote is ever replaced."""
    marker = root / ".synthetic"
    if root.exists():
        if not marker.exists():
            raise UserError(f"{root} exists and was not written by --data synthetic; move it or pick another --output-dir")
        shutil.rmtree(root)
    for split, n in (("train", size), ("val", max(size // 4, 2))):
        shapes = SyntheticShapes(n, image_size=image_size, num_classes=2, seed=seed, split=split)
        for name in SYNTHETIC_CLASSES:
            (root / split / f"{name}{IMAGE_SUFFIX}").mkdir(parents=True)
        for i, (pixels, target) in enumerate(zip(shapes.data, shapes.targets)):
            Image.fromarray(pixels).save(root / split / f"{SYNTHETIC_CLASSES[target]}{IMAGE_SUFFIX}" / f"{i:05d}.png")
        make_labels(root / split, log=None)
    marker.touch()


def data_root(args: argparse.Namespace, rt: runtime.Runtime) -> tuple[Path, str]:
    """(folder holding train/ and val/, its layout); rank 0 writes or downloads while the other ranks wait."""
    if args.data == "imagefolder":
        if args.labels == "files":
            raise UserError("--labels files needs --data notes-layout (imagefolder has no label files)")
        root = args.data_path / "hymenoptera_data"
        if rt.is_main:
            root = fetch_hymenoptera(args.data_path, args.download)
        layout = "imagefolder"
    else:
        root = args.output_dir / "dataset" if args.data == "synthetic" else args.data_path / "dataset"
        if args.data == "synthetic" and rt.is_main:
            runtime.prepare_output(args, rt)
            write_synthetic(root, args.synthetic_size or SYNTHETIC_SIZE, args.image_size, args.seed)
        layout = "notes-layout"
    if rt.distributed:
        torch.distributed.barrier()
    return root, layout


def class_folders(split_root: Path, layout: str) -> list[Path]:
    """The per-class image folders of one split: `*_image` (notes layout) or every sub-folder (imagefolder)."""
    if not split_root.is_dir():
        raise UserError(f"{split_root} not found (expected {layout} layout; see --help)")
    pattern = f"*{IMAGE_SUFFIX}" if layout == "notes-layout" else "*"
    folders = sorted(p for p in split_root.glob(pattern) if p.is_dir() and not p.name.startswith("."))
    if not folders:
        expected = f"ants{IMAGE_SUFFIX}/, bees{IMAGE_SUFFIX}/" if layout == "notes-layout" else "ants/, bees/"
        raise UserError(f"no class folders in {split_root} (expected e.g. {expected})")
    return folders


def build_split(split_root: Path, layout: str, labels: str, transform: transforms.Compose,
                class_to_idx: dict[str, int], skip_bad: bool) -> ConcatDataset:
    """One dataset per class folder, concatenated: the notes' `ants_dataset + bees_dataset`."""
    parts: list[Dataset] = []
    for folder in class_folders(split_root, layout):
        if labels == "files":
            label_dir = f"{label_from_folder(folder.name)}{LABEL_SUFFIX}"
            parts.append(LabelFileData(split_root, folder.name, label_dir, transform, class_to_idx, skip_bad))
        else:
            parts.append(MyData(split_root, folder.name, transform, class_to_idx, skip_bad))
    return ConcatDataset(parts)


def load_data(args: argparse.Namespace, rt: runtime.Runtime) -> tuple[ConcatDataset, ConcatDataset, list[str]]:
    root, layout = data_root(args, rt)
    classes = [label_from_folder(p.name) for p in class_folders(root / "train", layout)]
    class_to_idx = {name: i for i, name in enumerate(classes)}
    resize, to_tensor = transforms.Resize((args.image_size, args.image_size)), [transforms.ToTensor(),
                                                                               transforms.Normalize(MEAN, STD)]
    transform = transforms.Compose([resize, *to_tensor])
    policy, erase = recipe.image_augmentations(args)  # the notes train without augmentation: only when asked
    train_tf = transforms.Compose([resize, *policy, *to_tensor, *erase]) if policy or erase else transform
    train = build_split(root / "train", layout, args.labels, train_tf, class_to_idx, args.skip_bad)
    val = build_split(root / "val", layout, args.labels, transform, class_to_idx, args.skip_bad)
    return train, val, classes


def make_loaders(train_set: Dataset, val_set: Dataset, args: argparse.Namespace,
                 rt: runtime.Runtime) -> tuple[DataLoader, DataLoader]:
    """The notes' `DataLoader(dataset, batch_size, shuffle, num_workers, drop_last)`, spelled out:

    batch_size   how many images are stacked into one N×3×S×S tensor per step (-b)
    shuffle      a new random order every epoch; the loop reseeds torch from --seed + epoch, so the order is reproducible
    num_workers  worker processes decoding images in parallel (-j); 0 = in the main process, as in the notes
    drop_last    drop the last, smaller batch (len(dataset) % batch_size images); useful when batch statistics matter
                 (BatchNorm on a batch of 1) or every batch must have the same shape

    Under torchrun a DistributedSampler does the shuffling (and drop_last) so each process gets its own share. The test
    loader never shuffles or drops: every image is scored exactly once.
    """
    sampler = DistributedSampler(train_set, num_replicas=rt.world_size, rank=rt.rank, shuffle=args.shuffle,
                                 seed=args.seed, drop_last=args.drop_last) if rt.distributed else None
    common = dict(num_workers=args.workers, pin_memory=rt.device.type == "cuda", persistent_workers=args.workers > 0)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=args.shuffle and sampler is None,
                              sampler=sampler, drop_last=args.drop_last, **common)
    if len(train_loader) == 0:
        raise UserError(f"--drop-last with --batch-size {args.batch_size} leaves no batch of the {len(train_set)} "
                        "training images; lower the batch size")
    val_loader = DataLoader(val_set, batch_size=args.eval_batch_size or 2 * args.batch_size, shuffle=False,
                            sampler=ShardSampler(len(val_set), rt.rank, rt.world_size), drop_last=False, **common)
    return train_loader, val_loader


def main(argv: list[str] | None = None) -> dict:
    args = get_args_parser().parse_args(argv)
    if args.image_size < 8:
        raise UserError(f"--image-size must be at least 8, got {args.image_size}")
    rt = runtime.setup(args)
    train_set, val_set, classes = load_data(args, rt)
    if rt.is_main:
        print(f"classes {classes}; train {len(train_set)} images, val {len(val_set)} images ({args.data}, {rt.device})")
    train_loader, val_loader = make_loaders(train_set, val_set, args, rt)
    model = build_model(args.model, num_classes=len(classes))
    load_weights_arg(model, args, rt)
    optimizer = recipe.build_optimizer(model.parameters(), args)
    meta = engine.Meta(model_name=args.model, class_names=classes,
                       preprocess={"resize": [args.image_size, args.image_size], "mean": MEAN, "std": STD})
    return engine.fit(model, recipe.build_criterion(args), optimizer, train_loader, val_loader,
                      args=args, rt=rt, metric=metrics.classification_metric(len(classes)), meta=meta,
                      scheduler=recipe.build_scheduler(optimizer, args),
                      batch_transform=recipe.mix_batches(args, len(classes)))


if __name__ == "__main__":
    cli_main(main)
