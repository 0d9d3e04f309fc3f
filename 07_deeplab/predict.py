"""Segment images with a DeepLab checkpoint; `--crf` refines the scores with the mean-field CRF of V1/V2 (crf.py).

    python 07_deeplab/predict.py runs/07_deeplab/best.pth photo.jpg [more.jpg ...]
    python 07_deeplab/predict.py runs/07_deeplab/best.pth photo.jpg --crf --crf-iterations 10 --crf-bilateral-rgb 5

Writes `<stem>_mask.png` (VOC palette, the image's size) and `<stem>_overlay.png` per image (common/seg_predict.py).
The CRF needs the logits at full image size; it uses the RGB pixels (0-255) for its appearance kernel. It runs in
tiles (`--crf-tile`), so its working memory is bounded; what grows with the image are the full-size scores. Before
anything is loaded, every image's need is checked against the memory available, and an image that cannot fit is a
one-line error.
"""
import argparse
import dataclasses
import re
import sys
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import seg_predict  # noqa: E402
from common.checkpoint import load_checkpoint  # noqa: E402
from common.cli import resolve_device  # noqa: E402
from common.errors import UserError, cli_main  # noqa: E402
from common.images import ImageReadError, oriented_size  # noqa: E402
from common.inputs import expand_inputs  # noqa: E402
from common.segmentation import MAX_MEGAPIXELS, working_size  # noqa: E402
from crf import CRF_HELP, CRFParams, crf_refine, memory_bytes, working_bytes  # noqa: E402
from model import build_model  # noqa: E402

GIB = 2 ** 30


def get_args_parser() -> argparse.ArgumentParser:
    parser = seg_predict.get_args_parser(__doc__)
    parser.add_argument("--crf", action="store_true",
                        help="refine with the mean-field CRF (DeepLab V1/V2 post-processing)")
    group = parser.add_argument_group("CRF parameters (used with --crf)")
    for f in dataclasses.fields(CRFParams):
        group.add_argument(f"--crf-{f.name.replace('_', '-')}", type=type(f.default), default=f.default,
                           help=f"{CRF_HELP[f.name]} (default: %(default)s)")
    return parser


def available_memory(device: torch.device) -> int | None:
    """Bytes that can still be allocated on `device`: CUDA's free memory, or Linux's MemAvailable (/proc/meminfo:
    free plus reclaimable cache) for the CPU. None where it is unknown (another OS or device): no check then. Inside a
    container, MemAvailable is the host's; a cgroup limit below it is not seen."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    try:
        found = re.search(r"^MemAvailable:\s+(\d+) kB$", Path("/proc/meminfo").read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(found[1]) * 1024 if found else None


def input_bytes(height: int, width: int, num_classes: int) -> int:
    """The full-size float32 tensors the predict pipeline holds while the CRF runs, besides the CRF's own: logits and
    probabilities (C values a pixel each, common/seg_predict.predict_mask keeps both) and the RGB image (3)."""
    return 4 * height * width * (2 * num_classes + 3)


def check_crf_memory(images: list[Path], num_classes: int, params: CRFParams, device: torch.device,
                     max_megapixels: float = MAX_MEGAPIXELS) -> None:
    """Refuse, before the model is even loaded, an image whose CRF cannot fit in the memory available now, instead
    of the allocator's traceback halfway through. Sizes come from the file headers (no decoding); an unreadable file
    is left to `seg_predict.run`, which reports it and goes on with the others. The model's own forward pass is not
    counted (README, CRF memory)."""
    available = available_memory(device)
    if available is None:
        return
    for path in images:
        try:
            width, height = working_size(*oriented_size(path), max_megapixels)  # the size the CRF runs at
        except ImageReadError:
            continue
        shape = (1, num_classes, height, width)
        need = input_bytes(height, width, num_classes) + memory_bytes(shape, params)
        if need > available:
            tile = working_bytes(shape, params)
            raise UserError(f"{path}: --crf at {width}×{height} needs about {need / GIB:.1f} GiB "
                            f"({(need - tile) / GIB:.1f} GiB of full-size scores for {num_classes} classes, "
                            f"{tile / GIB:.1f} GiB for one --crf-tile {params.tile} tile and its halo), more than the "
                            f"{available / GIB:.1f} GiB available on {device}; lower --max-megapixels or --crf-tile, "
                            f"or leave out --crf")


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    postprocess = None
    if args.crf:
        try:
            params = CRFParams(**{f.name: getattr(args, f"crf_{f.name}") for f in dataclasses.fields(CRFParams)})
        except ValueError as exc:
            raise UserError(str(exc)) from None
        # The class count sizes the scores; reading it means loading the checkpoint once more before run() does
        # (a missing or bad file is the same one-line error either way).
        num_classes = len(load_checkpoint(args.checkpoint).get("class_names", ()))
        check_crf_memory([item.path for item in expand_inputs(args.images)], num_classes, params,
                         resolve_device(args.device), args.max_megapixels)
        postprocess = partial(crf_refine, params=params)
    return seg_predict.run(args, build_model, postprocess)


if __name__ == "__main__":
    cli_main(lambda: sys.exit(main()))
