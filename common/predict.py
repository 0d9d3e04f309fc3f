"""The classification predict CLI shared by every classification folder:

    python NN_topic/predict.py CHECKPOINT IMAGE [IMAGE ...] [--topk K] [--device D] [--unsafe-pickle]

The model is rebuilt from the checkpoint alone (name, kwargs, classes, preprocessing). Each image prints
`path: class (probability)`; a broken image is reported by name, the rest still run, and the exit code is 1 if any failed.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.transforms import v2

from .checkpoint import load_checkpoint, load_file, model_from_checkpoint
from .cli import resolve_device
from .errors import UserError
from .images import READ_NOTE, ImageReadError, open_image


def get_args_parser(description: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description or __doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a last.pth / best.pth written by train.py")
    parser.add_argument("images", type=Path, nargs="+", help=f"image files to classify ({READ_NOTE})")
    parser.add_argument("--topk", type=int, default=1, help="print the K most likely classes (default: %(default)s)")
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
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise UserError(f"{path} is not a checkpoint of this repo")
    return model_from_checkpoint(ckpt, build_model), list(ckpt["class_names"]), dict(ckpt.get("preprocess", {}))


def classify_main(argv: Sequence[str] | None, build_model: Callable[..., nn.Module],
                  description: str | None = None) -> int:
    """Run the predict CLI; returns the exit code (0, or 1 if any image failed). Bad arguments raise UserError."""
    args = get_args_parser(description).parse_args(argv)
    if args.topk < 1:
        raise UserError(f"--topk must be at least 1, got {args.topk}")
    device = resolve_device(args.device)
    model, classes, preprocess = load_for_prediction(args.checkpoint, build_model, args.unsafe_pickle)
    model.to(device)
    transform = preprocess_transform(preprocess)
    k = min(args.topk, len(classes))
    failed = 0
    for path in args.images:
        try:
            x = transform(open_image(path))
        except ImageReadError as exc:
            print(f"{path}: error: cannot read image ({exc.reason})", file=sys.stderr)
            failed += 1
            continue
        with torch.inference_mode():
            probs = model(x[None].to(device)).float().softmax(1)[0]
        top = probs.topk(k)
        shown = ", ".join(f"{classes[i]} ({p:.3f})" for p, i in zip(top.values.tolist(), top.indices.tolist()))
        print(f"{path}: {shown}")
    return 1 if failed else 0
