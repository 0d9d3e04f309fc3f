"""The notes' 标注标签 script, done safely: one `<class>_label/<stem>.txt` per image in every `<class>_image/` folder.

    python 01_dataset/make_labels.py data/dataset/train            # writes ants_label/*.txt, bees_label/*.txt
    python 01_dataset/make_labels.py data/dataset/train --force    # also rewrite labels that disagree with their folder

The notes' loop handles one hard-coded folder, cuts names at '.jpg' (a .png or a name containing '.jpg' breaks it) and
silently overwrites whatever is there. Here every `*_image` folder is labelled, the stem is `Path.stem`, running it twice
changes nothing, and a label file that says something other than its folder's class is only replaced with --force
(nothing is written at all until that is settled). It prints what it did per class.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common.errors import UserError, cli_main  # noqa: E402
from common.images import IMAGE_EXTENSIONS, list_files  # noqa: E402
from dataset import IMAGE_SUFFIX, LABEL_SUFFIX, label_from_folder, read_label  # noqa: E402


def make_labels(root: Path, force: bool = False, log: Callable[[str], None] | None = print) -> dict[str, Counter]:
    """Label every image under `root/*_image`; returns {class: Counter(written=, unchanged=, overwritten=, ignored=)}."""
    root = Path(root)
    image_dirs = sorted(p for p in root.glob(f"*{IMAGE_SUFFIX}") if p.is_dir()) if root.is_dir() else []
    if not image_dirs:
        raise UserError(f"no <class>{IMAGE_SUFFIX} folders in {root} (expected e.g. {root / ('ants' + IMAGE_SUFFIX)})")
    plan: list[tuple[Path, str, str]] = []  # (label file, label, status)
    counts: dict[str, Counter] = {}
    for image_dir in image_dirs:
        label = label_from_folder(image_dir.name)
        label_dir = root / f"{label}{LABEL_SUFFIX}"
        counts[label] = Counter(written=0, unchanged=0, overwritten=0, ignored=0)
        for path in list_files(image_dir):
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                counts[label]["ignored"] += 1
                continue
            label_file = label_dir / f"{path.stem}.txt"
            old = read_label(label_file)
            status = "written" if old is None else "unchanged" if old == label else "overwritten"
            plan.append((label_file, label, status))
            counts[label][status] += 1
    differing = [(f, lab) for f, lab, status in plan if status == "overwritten"]
    if differing and not force:
        first, label = differing[0]
        raise UserError(f"{len(differing)} label file(s) disagree with their folder, e.g. {first} says "
                        f"{read_label(first)!r}, not {label!r}; nothing written "
                        f"(pass --force to overwrite them)")
    for label_file, label, status in plan:
        if status != "unchanged":
            label_file.parent.mkdir(exist_ok=True)
            label_file.write_text(label, encoding="utf-8")  # the notes write the bare label, no newline
    if log is not None:
        for label, c in counts.items():
            ignored = f", {c['ignored']} non-image file(s) ignored" if c["ignored"] else ""
            log(f"{label}{LABEL_SUFFIX}: {c['written']} written, {c['unchanged']} unchanged, "
                f"{c['overwritten']} overwritten{ignored}")
    return counts


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="folder holding <class>_image folders, e.g. data/dataset/train")
    parser.add_argument("--force", action="store_true", help="overwrite label files that disagree with their folder")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Counter]:
    args = get_args_parser().parse_args(argv)
    return make_labels(args.root, force=args.force)


if __name__ == "__main__":
    cli_main(main)
