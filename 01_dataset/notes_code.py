"""The notes' 数据集Dataset导入, 标注标签 and testloader code as written, made runnable with the smallest fixes.

    python 01_dataset/notes_code.py                                        # offline: synthetic ants/bees, then the notes
    python 01_dataset/notes_code.py --data files --root-dir dataset/train/train   # your own <class>_image folders

Read it next to the notes: `MyData` is copied verbatim, the 标注标签 loop and the `test_loader` line keep the notes'
names, values and prints. Every change is marked `# notes: <the original line>` with the reason; code the notes do not
have (the calls that use `MyData`, the synthetic data) is marked `# added:`. dataset.py and make_labels.py are the
repo's versions (sorted files, RGB images, checked files, any image suffix); tests/test_notes_code.py checks that both
give the same items and label files.

Imports only torch, torchvision and PIL, plus `common/synthetic.py` (SyntheticShapes) for the offline data. With
`--data synthetic` (default) discs ("ants") and squares ("bees") are written as .jpg files in the notes' layout under
`--output-dir`: .jpg because the notes' data is jpg and their 标注标签 loop cuts names at '.jpg'.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common.synthetic import SyntheticShapes  # noqa: E402

NOTES_ROOT = Path("dataset/train/train")  # the notes' root_dir


class MyData(Dataset):

    def __init__(self,root_dir,label_dir):
        self.root_dir = root_dir
        self.label_dir = label_dir
        self.path = os.path.join(self.root_dir,self.label_dir)
        self.img_path= os.listdir(self.path)

    def __getitem__(self,idx):
        img_name = self.img_path[idx]
        img_item_path=os.path.join(self.root_dir,self.label_dir,img_name)
        img = Image.open(img_item_path)
        label=self.label_dir
        return img,label

    def __len__(self):
        return len(self.img_path)


def write_synthetic(root_dir: Path, size: int, seed: int) -> None:
    """`root_dir/ants_image/*.jpg` (discs) and `root_dir/bees_image/*.jpg` (squares): the notes' layout, offline."""
    shapes = SyntheticShapes(size, num_classes=2, seed=seed, split="train")
    for name in ("ants_image", "bees_image"):
        (root_dir / name).mkdir(parents=True, exist_ok=True)
    for i, (pixels, target) in enumerate(zip(shapes.data, shapes.targets)):
        Image.fromarray(pixels).save(root_dir / ("ants_image", "bees_image")[target] / f"{i:05d}.jpg", quality=95)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="synthetic", choices=("synthetic", "files"),
                        help="synthetic: write a notes-layout set under --output-dir; files: read --root-dir "
                             "(default: %(default)s)")
    parser.add_argument("--root-dir", type=Path, default=NOTES_ROOT,
                        help="with --data files: the folder holding ants_image/ and bees_image/ (default: %(default)s)")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/01_dataset/notes_code"),
                        help="with --data synthetic: where the data set is written (default: %(default)s)")
    parser.add_argument("--synthetic-size", type=int, default=200,
                        help="synthetic images, half ants, half bees; the test set gets as many (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic images (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Run the notes' three pieces in order; returns the data sets and loader so tests can compare them."""
    args = get_args_parser().parse_args(argv)
    if args.data == "synthetic":  # added: the notes' ants/bees images, drawn offline
        write_synthetic(args.output_dir / NOTES_ROOT, args.synthetic_size, args.seed)

    # 数据集Dataset导入
    # notes: root_dir = "dataset/train/train"  (the 标注标签 snippet's value; a flag here)
    root_dir = str(args.output_dir / NOTES_ROOT if args.data == "synthetic" else args.root_dir)
    # added: the notes define MyData but never call it; one data set per class folder, concatenated (Dataset's `+`)
    ants_dataset = MyData(root_dir, "ants_image")
    bees_dataset = MyData(root_dir, "bees_image")
    train_dataset = ants_dataset + bees_dataset
    img, label = train_dataset[0]
    print(len(ants_dataset), len(bees_dataset), len(train_dataset), img, label)

    # 标注标签
    target_dir = 'bees_image'
    img_path = os.listdir(os.path.join(root_dir, target_dir))
    label = target_dir.split('_')[0]
    out_dir = 'bees_label'
    # added: open(..., 'w') below does not create folders; the notes assume bees_label/ already exists
    os.makedirs(os.path.join(root_dir, out_dir), exist_ok=True)
    for i in img_path:
        file_name = i.split('.jpg')[0]
        with open(os.path.join(root_dir, out_dir,"{}.txt".format(file_name)),'w') as f:
            f.write(label)

    # testloader
    # added: the notes never define test_set; the tutorial's is CIFAR10(train=False, transform=ToTensor()), here its
    # synthetic stand-in (MyData returns PIL images and strings, which DataLoader cannot stack into a batch)
    test_set = SyntheticShapes(args.synthetic_size, seed=args.seed, split="test",
                               transform=torchvision.transforms.ToTensor())
    test_loader=DataLoader(dataset=test_set,batch_size=64,shuffle=False,num_workers=0,drop_last=True)
    #batch_size欸多少个数据打包成一组，shuffle为是否乱序，num_worker为使用多少个子进程进行数据加载，drop_last为是否去掉余数
    # notes: test_loader[i]返回值为imgs,targets  (a DataLoader cannot be indexed: iterate over it)
    for data in test_loader:
        imgs,targets = data
        print(imgs.shape, targets.shape)
    return {"root_dir": root_dir, "ants_dataset": ants_dataset, "bees_dataset": bees_dataset,
            "train_dataset": train_dataset, "test_loader": test_loader}


if __name__ == "__main__":
    main()
