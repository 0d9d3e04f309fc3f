"""The segmentation predict CLI shared by every segmentation folder:

    python NN_topic/predict.py CHECKPOINT IMAGE|FOLDER|"GLOB" [...] [--output-dir DIR] [--alpha A] [--device D]

For each image (any size; folders searched recursively, globs expanded: common/inputs.py) it writes `<name>_mask.png`,
a palette-mode PNG of class indices at the image's own size, in the run's class colours (`--classes FILE` at
training, else VOC's), and `<name>_overlay.png`, the image with the classes tinted in; `<name>` keeps the folder
structure below a folder input. `shares.csv` lists, per image, the share of its pixels in each class. An image above
`--max-megapixels` (a 12 MP phone photo, an 8000×8000 scan) is segmented at a working size of that many pixels and its
mask scaled back (nearest) to the image's size, with a note on the line: memory stays bounded, and no image silently
OOMs the process.
The model is rebuilt from the checkpoint alone; a broken image is reported by name, the rest still run, and the exit
code is 1 if any failed.

A folder extends the CLI by adding flags to `get_args_parser()` and passing a `postprocess` to `run` (07_deeplab's CRF).
"""
from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .cli import ensure_writable_dir, resolve_device
from .errors import UserError
from .images import READ_NOTE, ImageReadError, open_image
from .inputs import expand_inputs
from .checkpoint import load_checkpoint
from .palette import to_palette_image, with_colours
from .predict import from_checkpoint
from .segmentation import IGNORE_INDEX, MAX_MEGAPIXELS, MEAN, STD, normalize, working_size

# (probabilities N×C×H×W, RGB image N×3×H×W as float in [0, 255]) -> refined probabilities N×C×H×W
PostProcess = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def get_args_parser(description: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description or __doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a last.pth / best.pth written by train.py")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help=f"image files, folders (searched recursively) or quoted globs to segment, any size; "
                             f"{READ_NOTE}, and the mask has the upright size")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="where masks and overlays go (default: <checkpoint folder>/predictions)")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of the class colours (default: 0.5)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (default: %(default)s)")
    parser.add_argument("--max-megapixels", type=float, default=MAX_MEGAPIXELS,
                        help="larger images are segmented at this many megapixels (aspect kept) and the mask scaled "
                             "back to full size (default: %(default)s)")
    return parser


@torch.inference_mode()
def predict_mask(model: nn.Module, image: Image.Image, device: torch.device, mean: Sequence[float] = MEAN,
                 std: Sequence[float] = STD, postprocess: PostProcess | None = None) -> np.ndarray:
    """H×W uint8 class map for one RGB image at its full size (logits upsampled to the image if the model did not)."""
    rgb = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)[None].to(device)
    logits = model(normalize(rgb, mean, std)).float()
    if logits.shape[-2:] != rgb.shape[-2:]:
        logits = F.interpolate(logits, size=rgb.shape[-2:], mode="bilinear", align_corners=False)
    probs = logits.softmax(1)
    if postprocess is not None:
        probs = postprocess(probs, rgb.float())
    return probs.argmax(1)[0].to(torch.uint8).cpu().numpy()


def overlay(image: Image.Image, mask: np.ndarray, alpha: float = 0.5,
            class_colours: Sequence[Sequence[int]] | None = None) -> Image.Image:
    """The image with every non-background, non-void pixel blended toward its class colour (`class_colours[k]` for
    label k, VOC's where not given)."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    colours = np.asarray(with_colours(class_colours), dtype=np.float32).reshape(256, 3)[mask]
    tint = ((mask != 0) & (mask != IGNORE_INDEX))[..., None]
    blended = np.where(tint, (1 - alpha) * rgb + alpha * colours, rgb)
    return Image.fromarray(blended.round().astype(np.uint8), mode="RGB")


def output_dir(args: argparse.Namespace) -> Path:
    """`--output-dir`, or `<checkpoint folder>/predictions` when it is not given."""
    return args.output_dir or args.checkpoint.parent / "predictions"


def run(args: argparse.Namespace, build_model: Callable[..., nn.Module], postprocess: PostProcess | None = None) -> int:
    """Segment `args.images` with `args.checkpoint`; returns the exit code (0, or 1 if any image failed)."""
    if not 0 <= args.alpha <= 1:
        raise UserError(f"--alpha must be in [0, 1], got {args.alpha}")
    if not args.max_megapixels > 0:
        raise UserError(f"--max-megapixels must be positive, got {args.max_megapixels}")
    items = expand_inputs(args.images)
    device = resolve_device(args.device)
    out_dir = output_dir(args)
    ensure_writable_dir(out_dir)
    ckpt = load_checkpoint(args.checkpoint)
    model, classes, preprocess = from_checkpoint(ckpt, args.checkpoint, build_model)
    colours = ckpt.get("extra", {}).get("palette")  # None in checkpoints from before --classes: VOC's colours
    model.to(device)
    mean, std = preprocess.get("mean") or MEAN, preprocess.get("std") or STD
    out_dir.mkdir(parents=True, exist_ok=True)
    failed, shares = 0, []
    for item in items:
        path = item.path
        try:
            image = open_image(path)
        except ImageReadError as exc:
            print(f"{path}: error: cannot read image ({exc.reason})", file=sys.stderr)
            failed += 1
            continue
        size = working_size(*image.size, args.max_megapixels)
        shrunk = size != image.size
        mask = predict_mask(model, image.resize(size, Image.BILINEAR) if shrunk else image, device, mean, std,
                            postprocess)
        note = ""
        if shrunk:
            note = f"; segmented at {size[0]}x{size[1]} (--max-megapixels {args.max_megapixels:g}), mask scaled back"
            mask = np.asarray(Image.fromarray(mask).resize(image.size, Image.NEAREST))
        mask_path = out_dir / f"{item.name}_mask.png"
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        to_palette_image(mask, colours).save(mask_path)
        overlay(image, mask, args.alpha, colours).save(out_dir / f"{item.name}_overlay.png")
        counts = np.bincount(mask.ravel(), minlength=len(classes))[:len(classes)]
        shares.append([str(path), *(f"{c / mask.size:.6f}" for c in counts)])
        found = ", ".join(classes[c] for c in np.unique(mask) if c < len(classes))
        print(f"{path}: {mask_path} ({found}{note})")
    with open(out_dir / "shares.csv", "w", newline="") as f:
        csv.writer(f).writerows([["path", *classes], *shares])
    return 1 if failed else 0


def segment_main(argv: Sequence[str] | None, build_model: Callable[..., nn.Module], description: str | None = None,
                 postprocess: PostProcess | None = None) -> int:
    """Parse the shared flags and `run`; a folder without extra flags calls only this."""
    return run(get_args_parser(description).parse_args(argv), build_model, postprocess)
