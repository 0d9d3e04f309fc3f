"""The notes' 数据集Dataset导入 and 标注标签: one `Dataset` per class folder, label from the folder name or from a .txt file.

The notes' layout (a class's images in `<class>_image/`, one label file per image in `<class>_label/<same stem>.txt`):

    dataset/train/ants_image/0013035.jpg     dataset/train/ants_label/0013035.txt   (contains "ants")
    dataset/train/bees_image/16838648.jpg    dataset/train/bees_label/16838648.txt  (contains "bees")

`MyData(root_dir, label_dir)` is the notes' class: `label_dir` names the image folder and the label is that name
(`ants_image` → `ants`; a plain `ants/` folder, ImageFolder's layout, gives `ants` too). `LabelFileData` reads each label
from its .txt file instead. Compared with the notes, both list files in sorted order (os.listdir order differs between
machines), open images with `common.images.open_image` (upright per EXIF, RGB, transparency on white: a grey or RGBA
PNG would otherwise break batching), check every file when built (a corrupt file is an error naming it, or skipped with
`skip_bad=True`, never a PIL traceback mid-epoch), and return a class index when `class_to_idx` is given, which is what
`DataLoader` and `CrossEntropyLoss` need. Without it they return the label string, as in the notes.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image
from torch.utils.data import Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common.errors import UserError  # noqa: E402
from common.images import check_images, list_files, open_image  # noqa: E402

IMAGE_SUFFIX, LABEL_SUFFIX = "_image", "_label"


def label_from_folder(name: str) -> str:
    """`ants_image` → `ants`; `ants` → `ants`. The notes' `target_dir.split('_')[0]` would turn `golden_retriever_image`
    into `golden`, so only the `_image` suffix is removed."""
    return name.removesuffix(IMAGE_SUFFIX)


def _checked_images(folder: Path, skip_bad: bool) -> list[Path]:
    images = check_images(list_files(folder), skip_bad=skip_bad)
    if not images:
        raise UserError(f"{folder} contains no {'readable ' if skip_bad else ''}images")
    return images


class MyData(Dataset):
    """The notes' MyData: every image in `root_dir/label_dir`, labelled with the folder's name."""

    def __init__(self, root_dir: str | Path, label_dir: str, transform: Callable[[Image.Image], Any] | None = None,
                 class_to_idx: dict[str, int] | None = None, skip_bad: bool = False) -> None:
        self.root_dir = Path(root_dir)
        self.label_dir = label_dir
        self.path = self.root_dir / self.label_dir
        self.img_path = _checked_images(self.path, skip_bad)
        self.transform = transform
        self.label = label_from_folder(label_dir)
        if class_to_idx is not None and self.label not in class_to_idx:
            raise UserError(f"{self.path}: class {self.label!r} is not one of {sorted(class_to_idx)}")
        self.target = class_to_idx[self.label] if class_to_idx is not None else self.label

    def __getitem__(self, idx: int) -> tuple[Any, int | str]:
        img = open_image(self.img_path[idx])
        return (self.transform(img) if self.transform else img), self.target

    def __len__(self) -> int:
        return len(self.img_path)


def read_label(label_file: Path) -> str | None:
    """The label a 标注标签 file holds (stripped), None when there is no such file; a label folder that is a file, a
    folder named like a label file or a file that is not UTF-8 text is a `UserError` naming it."""
    if label_file.parent.exists() and not label_file.parent.is_dir():
        raise UserError(f"{label_file.parent} is a file, not a folder of <stem>.txt label files")
    if label_file.is_dir():
        raise UserError(f"{label_file} is a folder, not a label file")
    try:
        return label_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise UserError(f"{label_file} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at position {exc.start}); "
                        "save it as UTF-8") from None


class LabelFileData(Dataset):
    """The 标注标签 variant: images in `root_dir/image_dir`, each labelled by `root_dir/label_dir/<stem>.txt`.

    All label files are read when the set is built, so a missing or unknown label is reported before training starts.
    """

    def __init__(self, root_dir: str | Path, image_dir: str, label_dir: str,
                 transform: Callable[[Image.Image], Any] | None = None,
                 class_to_idx: dict[str, int] | None = None, skip_bad: bool = False) -> None:
        root = Path(root_dir)
        self.img_path = _checked_images(root / image_dir, skip_bad)
        self.transform = transform
        self.labels: list[int | str] = []
        for img in self.img_path:
            label_file = root / label_dir / f"{img.stem}.txt"
            label = read_label(label_file)
            if label is None:
                raise UserError(f"{img} has no label file {label_file}; write them with make_labels.py")
            if class_to_idx is not None:
                if label not in class_to_idx:
                    raise UserError(f"{label_file} says {label!r}, not one of {sorted(class_to_idx)}")
                label = class_to_idx[label]
            self.labels.append(label)

    def __getitem__(self, idx: int) -> tuple[Any, int | str]:
        img = open_image(self.img_path[idx])
        return (self.transform(img) if self.transform else img), self.labels[idx]

    def __len__(self) -> int:
        return len(self.img_path)
