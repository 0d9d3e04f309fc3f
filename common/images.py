"""Image files a user hands us: listed, checked up front, opened with errors that name the file.

A folder of images from the internet always holds a surprise (a truncated JPEG, an HTML page saved as .jpg, a notes.txt).
Checking every file when the data set is built turns that into one clear line before training starts, instead of a PIL
traceback from inside a DataLoader worker halfway through epoch 3. `skip_bad=True` drops such files with a warning instead.

`open_image` is the one way a user's picture becomes pixels, in training, checking and prediction alike: upright (EXIF
orientation), 8-bit RGB, transparency on white. `open_mask` is its opposite for label masks: the stored values, untouched.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps

from .errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".tif", ".tiff", ".webp")
READ_NOTE = ("EXIF orientation is applied, transparency is composited on white, 16-bit and float images are scaled "
             "to 8 bits")  # how open_image reads a file, for the --help of every CLI that takes a user's images
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)  # what a bad file makes PIL raise
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa")
_WHITE = (255, 255, 255, 255)


class ImageReadError(UserError):
    """An image file that cannot be read. The message names the file; `reason` is the why alone, for CLIs that report
    file by file (`<path>: error: cannot read image (<reason>)`) and go on with the next one."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def warning(message: str) -> None:
    """`warning: <message>` on stderr: a skipped file, told once, and the run goes on."""
    print(f"warning: {message}", file=sys.stderr)


def is_image_file(path: Path) -> bool:
    """A visible file with an image extension (what folder inputs and data folders take as images)."""
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_files(folder: Path) -> list[Path]:
    """Every visible file in `folder`, sorted (os.listdir order differs between machines). Hidden files such as
    .DS_Store are not data and are left out."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


@contextmanager
def _reading(path: str | Path, what: str = "image") -> Iterator[None]:
    """Turn whatever PIL raises for a bad file into an `ImageReadError` naming it."""
    try:
        yield
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file", "no such file") from None
    except _DECODE_ERRORS as exc:
        reason = f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else 'unreadable'}"
        raise ImageReadError(f"{path} is not a readable {what} ({reason})", reason) from None


def image_problem(path: Path) -> str | None:
    """Why `path` is not a usable image (None when it is). Goes through `open_image`, so a file that passes here is one
    training can read: the whole file is decoded (`verify()` alone misses truncated JPEGs) and converted."""
    try:
        open_image(path)
    except ImageReadError as exc:
        return exc.reason
    return None


def check_images(paths: Iterable[Path], *, skip_bad: bool = False,
                 warn: Callable[[str], None] | None = warning) -> list[Path]:
    """The readable images among `paths`, in order. A bad file is a `UserError` naming it (the first bad one in
    order), or with `skip_bad` a warning and a skip. Files are decoded by a few threads at once (PIL releases the GIL
    while decoding), so checking a folder of thousands of photos takes seconds, not minutes."""
    paths = list(paths)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        problems = list(pool.map(image_problem, paths))
    good = []
    for path, problem in zip(paths, problems):
        if problem is None:
            good.append(path)
        elif skip_bad:
            if warn is not None:
                warn(f"skipping {path}: not a readable image ({problem})")
        else:
            raise UserError(f"{path} is not a readable image ({problem}); remove it or pass --skip-bad")
    return good


def _scaled_to_8_bits(img: Image.Image) -> Image.Image:
    """One-channel 16-bit, 32-bit integer and float images as 8-bit 'L' (PIL's own convert clips them at 255)."""
    values = np.asarray(img)
    values = np.nan_to_num(values) * 255 if img.mode == "F" else values / 257  # NaN → 0; 65535 → 255
    return Image.fromarray(values.clip(0, 255).round().astype(np.uint8))  # 2-D uint8: mode L


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        img = _scaled_to_8_bits(img)
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        return Image.alpha_composite(Image.new("RGBA", img.size, _WHITE), img.convert("RGBA")).convert("RGB")
    return img.convert("RGB")


def open_image(path: str | Path) -> Image.Image:
    """Load a user's image file as the 8-bit RGB picture a person sees in a viewer; the one way every train and predict
    path opens images, so training and prediction see the same pixels.

    - EXIF orientation is applied (`ImageOps.exif_transpose`): a phone photo stored sideways comes out upright, at its
      displayed size (a 451×300 file with orientation 6 is 300 wide, 451 high).
    - 16-bit and wider one-channel images are scaled, not clipped: `I;16*` (16-bit PNG/TIFF) is value / 257, so 0..65535
      maps onto 0..255; `I` (32-bit integer, how PIL opens 16-bit PGM and some TIFFs) follows the same 16-bit rule,
      values outside 0..65535 clipped; `F` (32-bit float) is read as intensity in [0, 1], times 255, clipped outside
      it, NaN → 0. Always rounded to the nearest 8-bit value.
    - Transparency (RGBA, LA, PA, a palette or grey/RGB image with a transparent colour) is composited on white, as a
      browser shows it; PIL's plain `convert("RGB")` drops alpha and leaves the hidden, usually black, colours.
    - Everything else (palette, L, 1, CMYK, YCbCr, ...) is converted to RGB by PIL.

    Any failure is an `ImageReadError` (a `UserError`) naming the file.
    """
    with _reading(path), Image.open(path) as img:
        ImageOps.exif_transpose(img, in_place=True)
        return _to_rgb(img)


def oriented_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of `path` as `open_image` returns it, from the header and EXIF alone (no pixel decoding): checking
    a data set's image against its mask this way costs no JPEG decode."""
    with _reading(path), Image.open(path) as img:
        width, height = img.size
        orientation = img.getexif().get(ExifTags.Base.Orientation)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)  # the orientations that turn by 90°


def open_mask(path: str | Path) -> Image.Image:
    """Load a label mask exactly as stored: no EXIF orientation, no mode conversion, no transparency handling, no
    resampling, because its pixel values are class indices, not colours (a palette PNG's transparent index is a label
    like any other). The mode is checked by `segmentation.mask_to_array` (palette or grayscale only). Any failure is an
    `ImageReadError` naming the file."""
    with _reading(path, "mask"), Image.open(path) as mask:
        mask.load()
        return mask
