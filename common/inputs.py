"""What predict.py was given → the image files to run, each with the name its outputs get.

Files, folders (searched recursively for image extensions, hidden files skipped, sorted) and globs (`"photos/**/*.jpg"`,
quoted so the shell leaves it to us) may be mixed. Outputs keep the folder structure below a folder or a glob's fixed
part, so `a/x.jpg` and `b/x.jpg` from one folder never overwrite each other; two inputs that would still give the same
name are refused before anything runs.
"""
from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .images import IMAGE_EXTENSIONS, is_image_file

GLOB_CHARS = "*?["


@dataclass(frozen=True)
class Input:
    path: Path  # the file to read
    name: Path  # its outputs' name, without suffix, relative to the output folder (`x`, `a/x`, `photos/2024/x`)


def _below(root: Path, files: list[Path]) -> list[Input]:
    """Files found under `root`: named by their path below root's parent (the folder's own name comes first)."""
    return [Input(f, f.relative_to(root.parent).with_suffix("")) for f in files]


def expand_inputs(specs: Sequence[str | Path]) -> list[Input]:
    """The images `specs` stand for, in the order given (each folder and glob sorted). A missing file, a folder without
    images, a glob that matches none, or two outputs with the same name is a UserError."""
    found: list[Input] = []
    for spec in map(str, specs):
        path = Path(spec)
        if path.is_dir():
            files = sorted(f for f in path.rglob("*") if is_image_file(f) and not any(
                part.startswith(".") for part in f.relative_to(path).parts))
            if not files:
                raise UserError(f"{spec} is a folder with no images ({', '.join(IMAGE_EXTENSIONS)})")
            found += _below(path, files)
        elif path.exists():
            found.append(Input(path, Path(path.stem)))
        elif any(c in spec for c in GLOB_CHARS):
            files = sorted(Path(f) for f in glob.glob(spec, recursive=True) if is_image_file(Path(f)))
            if not files:
                raise UserError(f"{spec} matches no image files")
            fixed = Path(*[p for p in Path(spec).parts[:next(i for i, p in enumerate(Path(spec).parts)
                                                           if any(c in p for c in GLOB_CHARS))]] or ["."])
            found += [Input(f, f.relative_to(fixed).with_suffix("")) for f in files]
        else:
            raise UserError(f"{spec}: no such file or folder")
    names: dict[Path, Path] = {}
    for item in found:
        if item.name in names and names[item.name] != item.path:
            raise UserError(f"{names[item.name]} and {item.path} would both write outputs named {item.name}; "
                            "rename one or give their folder instead")
        names[item.name] = item.path
    return list({item.path: item for item in found}.values())  # a file given twice runs once
