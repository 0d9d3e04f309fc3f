"""The classification predict CLI shared by every classification folder:

    python NN_topic/predict.py CHECKPOINT IMAGE|FOLDER|"GLOB" [...] [--topk K] [--format text|csv|json]
                               [--output-dir DIR] [-b N] [--device D] [--unsafe-pickle]

The model is rebuilt from the checkpoint alone (name, kwargs, classes, preprocessing). Folders are searched recursively
for images and globs expanded (common/inputs.py); images are batched (`-b`, those of one size together) with a progress
bar past 8 images. `--format text` prints `path: class (probability), ...`; csv/json print the same table (path, top-k
classes and probabilities), or write `predictions.csv` / `predictions.json` into `--output-dir`. A broken image is
reported by name, the rest still run, and the exit code is 1 if any failed.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.transforms import v2

from .checkpoint import load_checkpoint, load_file, model_from_checkpoint
from .cli import ensure_writable_dir, resolve_device
from .errors import UserError
from .images import READ_NOTE, ImageReadError, open_image
from .inputs import expand_inputs


def get_args_parser(description: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description or __doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a last.pth / best.pth written by train.py")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help=f"image files, folders (searched recursively) or quoted globs to classify ({READ_NOTE})")
    parser.add_argument("--topk", type=int, default=1, help="print the K most likely classes (default: %(default)s)")
    parser.add_argument("--format", choices=("text", "csv", "json"), default="text",
                        help="text lines, or a csv / json table (default: %(default)s)")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="write predictions.<format> there instead of printing it (csv and json)")
    parser.add_argument("-b", "--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    parser.add_argument("--cam", action="store_true",
                        help="also write <name>_cam.png per image: Grad-CAM of the top class at the last convolutional "
                             "stage, over the image (into --output-dir, default <checkpoint folder>/cam)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (default: %(default)s)")
    parser.add_argument("--unsafe-pickle", action="store_true",
                        help="accept a whole pickled model (the notes' method 1, torch.save(model)); runs code from the "
                             "file, so only for files you made yourself")
    return parser


def preprocess_transform(preprocess: dict[str, Any]) -> v2.Compose:
    """Eval transform from a checkpoint's `preprocess`: resize (int = short side, [h, w] = exact), optional centre crop,
    ToTensor, optional Normalize."""
    steps: list[Any] = [v2.ToImage()]
    if preprocess.get("resize") is not None:
        steps.append(v2.Resize(preprocess["resize"], antialias=True))
    if preprocess.get("crop") is not None:
        steps.append(v2.CenterCrop(preprocess["crop"]))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if preprocess.get("mean") is not None:
        steps.append(v2.Normalize(preprocess["mean"], preprocess["std"]))
    return v2.Compose(steps)


def load_for_prediction(path: Path, build_model: Callable[..., nn.Module], unsafe_pickle: bool = False
                        ) -> tuple[nn.Module, list[str], dict[str, Any]]:
    """(model in eval mode, class names, preprocess) from a checkpoint of this repo, or, with `unsafe_pickle`, from a
    full pickled model (method 1) carrying `class_names` and `preprocess` attributes."""
    if unsafe_pickle:
        obj = load_file(path, unsafe_pickle=True)
        if isinstance(obj, nn.Module):
            names = getattr(obj, "class_names", None)
            if names is None:
                raise UserError(f"{path}: pickled model has no class_names attribute")
            return obj.eval(), list(names), dict(getattr(obj, "preprocess", {}))
        ckpt = obj
    else:
        ckpt = load_checkpoint(path)
    return from_checkpoint(ckpt, path, build_model)


def from_checkpoint(ckpt: Any, path: Path, build_model: Callable[..., nn.Module]
                    ) -> tuple[nn.Module, list[str], dict[str, Any]]:
    """(model in eval mode, class names, preprocess) from an already loaded checkpoint `ckpt` (read from `path`)."""
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise UserError(f"{path} is not a checkpoint of this repo")
    return model_from_checkpoint(ckpt, build_model), list(ckpt["class_names"]), dict(ckpt.get("preprocess", {}))


def batches(items: list, transform: Callable, size: int):
    """(items, stacked tensors) of up to `size` consecutive readable images of one shape (mixed sizes are allowed: a
    new shape starts a new batch); an unreadable image comes out alone as (item, ImageReadError)."""
    group: list = []
    for item in items:
        try:
            x = transform(open_image(item.path))
        except ImageReadError as exc:
            yield from _flush(group)
            group = []
            yield [item], exc
            continue
        if group and (len(group) == size or group[0][1].shape != x.shape):
            yield from _flush(group)
            group = []
        group.append((item, x))
    yield from _flush(group)


def _flush(group: list):
    if group:
        yield [item for item, _ in group], torch.stack([x for _, x in group])


def table(rows: list[dict[str, Any]], fmt: str, k: int) -> str:
    """csv (path, class1, probability1, …) or json (a list of {path, top: [{class, probability}]})."""
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", *(f"{c}{i}" for i in range(1, k + 1) for c in ("class", "probability"))])
    for row in rows:
        writer.writerow([row["path"], *(v for t in row["top"] for v in (t["class"], f"{t['probability']:.6f}"))])
    return out.getvalue()


def write_cams(model: nn.Module, items: list, transform: Callable, classes: list[str], out_dir: Path,
               device: torch.device) -> None:
    """`<name>_cam.png` per readable image: Grad-CAM of its top class (common/cam.py) over the image."""
    from .cam import cam_overlay, grad_cam

    for item in items:
        try:
            image = open_image(item.path)
        except ImageReadError:
            continue  # already reported
        cam, index = grad_cam(model, transform(image)[None].to(device))
        path = out_dir / f"{item.name}_cam.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cam_overlay(image, cam.cpu()).save(path)
        print(f"{item.path}: Grad-CAM of {classes[index]} → {path}")


def classify_main(argv: Sequence[str] | None, build_model: Callable[..., nn.Module],
                  description: str | None = None) -> int:
    """Run the predict CLI; returns the exit code (0, or 1 if any image failed). Bad arguments raise UserError."""
    from tqdm import tqdm

    args = get_args_parser(description).parse_args(argv)
    if args.topk < 1:
        raise UserError(f"--topk must be at least 1, got {args.topk}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.output_dir is not None and args.format == "text" and not args.cam:
        raise UserError("--output-dir writes a table or CAMs: add --format csv, --format json or --cam")
    items = expand_inputs(args.images)
    if args.output_dir is not None:
        ensure_writable_dir(args.output_dir)
    device = resolve_device(args.device)
    model, classes, preprocess = load_for_prediction(args.checkpoint, build_model, args.unsafe_pickle)
    model.to(device)
    transform = preprocess_transform(preprocess)
    k = min(args.topk, len(classes))
    failed, rows = 0, []
    bar = tqdm(total=len(items), unit="img", file=sys.stderr, disable=len(items) <= 8)
    for group, x in batches(items, transform, args.batch_size):
        bar.update(len(group))
        if isinstance(x, ImageReadError):
            bar.write(f"{group[0].path}: error: cannot read image ({x.reason})", file=sys.stderr)
            failed += 1
            continue
        with torch.inference_mode():
            top = model(x.to(device)).float().softmax(1).topk(k)
        for item, probs, indices in zip(group, top.values.tolist(), top.indices.tolist()):
            rows.append({"path": str(item.path), "top": [{"class": classes[i], "probability": p}
                                                         for p, i in zip(probs, indices)]})
            if args.format == "text":
                bar.write(f"{item.path}: " + ", ".join(f"{classes[i]} ({p:.3f})" for p, i in zip(probs, indices)))
    bar.close()
    if args.cam:
        write_cams(model, items, transform, classes, args.output_dir or args.checkpoint.parent / "cam", device)
    if args.format != "text":
        text = table(rows, args.format, k)
        if args.output_dir is None:
            sys.stdout.write(text)
        else:
            args.output_dir.mkdir(parents=True, exist_ok=True)
            path = args.output_dir / f"predictions.{args.format}"
            path.write_text(text)
            print(f"{len(rows)} predictions: {path}")
    return 1 if failed else 0
