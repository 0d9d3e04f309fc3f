"""Image files a user hands us: listed, checked up front, opened with errors that name the file.

A folder of images from the internet always holds a surprise (a truncated JPEG, an HTML page saved as .jpg, a notes.txt).
Checking every file when the data set is built turns that into one clear line before training starts, instead of a PIL
traceback from inside a DataLoader worker halfway through epoch 3. `skip_bad=True` drops such files with a warning instead.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from PIL import Image

from .errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".tif", ".tiff", ".webp")


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def list_files(folder: Path) -> list[Path]:
    """Every visible file in `folder`, sorted (os.listdir order differs between machines). Hidden files such as
    .DS_Store are not data and are left out."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def image_problem(path: Path) -> str | None:
    """Why `path` is not a usable image (None when it is). Decodes the whole file: `verify()` alone misses truncated
    JPEGs."""
    try:
        with Image.open(path) as img:
            img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else 'unreadable'}"
    return None


def check_images(paths: Iterable[Path], *, skip_bad: bool = False,
                 warn: Callable[[str], None] | None = _warn) -> list[Path]:
    """The readable images among `paths`. A bad file is a `UserError` naming it, or with `skip_bad` a warning and a skip."""
    good = []
    for path in paths:
        problem = image_problem(path)
        if problem is None:
            good.append(path)
        elif skip_bad:
            if warn is not None:
                warn(f"skipping {path}: not a readable image ({problem})")
        else:
            raise UserError(f"{path} is not a readable image ({problem}); remove it or pass --skip-bad")
    return good


def open_rgb(path: Path) -> Image.Image:
    """Load `path` as an RGB PIL image; any failure is a `UserError` naming the file."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{path} is not a readable image ({exc.__class__.__name__})") from None
