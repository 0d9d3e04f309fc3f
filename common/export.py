"""Export a checkpoint to ONNX or a `torch.export` program, and prove the file computes what PyTorch computes.

    python NN_topic/export.py CHECKPOINT --format onnx|torch-export [--dynamic] [--image-size N] [--output FILE]

The model is rebuilt from the checkpoint alone (as predict.py does) in eval mode. `--dynamic` makes the batch size
free, and for segmentation (a model whose output is a map) the height and width too. After writing, the file is run
on a fresh input — batch 3 for a dynamic export and, for a dynamic segmentation export, an odd size — and compared
with PyTorch: the largest absolute difference is printed, and above 1e-4 the export is refused (the file removed,
exit 2). ONNX needs `onnx`, `onnxscript` and, for the check, `onnxruntime` (all in requirements.txt).
"""
from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import load_checkpoint, model_from_checkpoint
from .errors import UserError, first_line

TOLERANCE = 1e-4  # fp32: what "the same outputs" means here


def get_args_parser(description: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description or __doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a last.pth / best.pth written by train.py")
    parser.add_argument("--format", choices=("onnx", "torch-export"), default="onnx",
                        help="onnx (run with onnxruntime) or a torch.export program (.pt2) (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=None,
                        help="the file to write (default: the checkpoint's name with .onnx or .pt2)")
    parser.add_argument("--dynamic", action="store_true",
                        help="free batch size (and height and width for segmentation)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="side of the example input (default: the checkpoint's preprocessing or image size, else 224)")
    return parser


def example_size(ckpt: dict[str, Any]) -> int:
    """The input side the model was trained and evaluated at: preprocessing's crop or resize, else `--image-size`."""
    pre, args = ckpt.get("preprocess") or {}, ckpt.get("args") or {}
    for value in (pre.get("crop"), pre.get("resize"), args.get("crop_size"), args.get("image_size")):
        if value is not None:
            return int(value[0] if isinstance(value, (list, tuple)) else value)
    return 224


def dynamic_shapes(segmentation: bool, fmt: str = "onnx") -> dict[str, dict[int, Any]]:
    """Batch free; for segmentation also H and W. ONNX: from 32 px (every net here downsamples at most 32×; ONNX
    Runtime does not enforce the range). torch-export: `Dim.DYNAMIC`, because a named range makes torch.export refuse
    any guard it cannot prove for the whole range (FCN's "the padded stride-32 map is not 1×1", true only above 32 px);
    it keeps such guards as checks in the program instead. 06's pad to a multiple of 32 leaves guards that tie the
    program to the traced side's kind, so its dynamic .pt2 fails the odd-size check and is refused: use ONNX there."""
    dims = {0: torch.export.Dim("batch", min=1, max=4096)}
    if segmentation and fmt == "torch-export":
        dims |= {2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC}
    elif segmentation:
        dims |= {2: torch.export.Dim("height", min=32, max=4096), 3: torch.export.Dim("width", min=32, max=4096)}
    return {"x": dims}


class Logits(nn.Module):
    """The model with one named input `x` and one tensor out, whatever the folder's model returns in eval mode."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def write(model: nn.Module, x: torch.Tensor, fmt: str, path: Path, dynamic: dict | None) -> Callable:
    """Export to `path`; returns a function that runs the written file (numpy-free: tensor in, tensor out)."""
    if fmt == "torch-export":
        program = torch.export.export(model, (x,), dynamic_shapes=dynamic)
        torch.export.save(program, path)
        loaded = torch.export.load(path).module()
        return lambda t: loaded(t)
    try:
        import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
        import onnxruntime
    except ImportError as exc:
        raise UserError(f"--format onnx needs {exc.name}: pip install onnx onnxscript onnxruntime") from None
    torch.onnx.export(model, (x,), str(path), input_names=["x"], output_names=["logits"], dynamic_shapes=dynamic,
                      dynamo=True)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda t: torch.from_numpy(session.run(None, {"x": t.numpy()})[0])


def export_main(argv: Sequence[str] | None, build_model: Callable[..., nn.Module],
                description: str | None = None) -> dict[str, Any]:
    """Run the export CLI; returns {"path", "max_abs_diff", "shape"}. A mismatch or a bad argument is a UserError."""
    args = get_args_parser(description).parse_args(argv)
    ckpt = load_checkpoint(args.checkpoint)  # read once: the model and the example size both come from it
    model = Logits(model_from_checkpoint(ckpt, build_model)).eval()
    size = args.image_size if args.image_size is not None else example_size(ckpt)
    if size < 1:
        raise UserError(f"--image-size must be at least 1, got {size}")
    try:  # a size the architecture cannot take (tudui's Linear expects 32 px) fails here, before anything is written
        with torch.no_grad():
            segmentation = model(torch.zeros(1, 3, size, size)).dim() == 4
    except RuntimeError as exc:
        raise UserError(f"--image-size {size}: this model cannot run on a {size}×{size} input "
                        f"({first_line(exc)})") from None
    # traced at batch 2 and, for free H×W, at least 64 px: torch.export specialises any size that is 0 or 1 (a stride-32
    # map of a 32 px input is 1×1) and would then refuse every other value
    side = max(size, 64) if args.dynamic and segmentation else size
    x = torch.randn(2 if args.dynamic else 1, 3, side, side, generator=torch.Generator().manual_seed(0))
    path = args.output or args.checkpoint.with_suffix(".onnx" if args.format == "onnx" else ".pt2")
    try:
        run = write(model, x, args.format, path, dynamic_shapes(segmentation, args.format) if args.dynamic else None)
    except UserError:
        raise
    except Exception as exc:  # torch.export / torch.onnx explain at length; the first line says what failed
        path.unlink(missing_ok=True)
        hint = "; export without --dynamic, or try the other --format" if args.dynamic else ""
        raise UserError(f"cannot export {args.checkpoint} as {args.format}: {first_line(exc)}{hint}") \
            from None
    # a fresh input the export never saw: another batch size and, where H×W are free, an odd size
    side = side + 5 if args.dynamic and segmentation else side
    check = torch.randn(3 if args.dynamic else 1, 3, side, side, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(check)
        try:
            got = run(check)
        except Exception as exc:  # a torch.export program whose guards refuse this size (06's pad, see dynamic_shapes)
            path.unlink(missing_ok=True)
            raise UserError(f"{path}: the exported {args.format} program cannot run a {'×'.join(map(str, check.shape))} "
                            f"input ({first_line(exc)[:160]}); nothing was kept; try the other "
                            f"--format") from None
    diff = (expected - got).abs().max().item()
    if got.shape != expected.shape or not diff <= TOLERANCE:
        path.unlink(missing_ok=True)
        raise UserError(f"{path}: the exported model's output differs from PyTorch's ({tuple(got.shape)} vs "
                        f"{tuple(expected.shape)}, max |Δ| {diff:.2e} > {TOLERANCE:g}); nothing was kept")
    print(f"{path}: {args.format}, input {'×'.join(map(str, x.shape))}{' (dynamic)' if args.dynamic else ''}; checked on "
          f"{'×'.join(map(str, check.shape))}: max |Δ| {diff:.1e} vs PyTorch")
    return {"path": path, "max_abs_diff": diff, "shape": tuple(got.shape)}
