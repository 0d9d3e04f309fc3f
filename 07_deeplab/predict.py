"""Segment images with a DeepLab checkpoint; `--crf` refines the scores with the mean-field CRF of V1/V2 (crf.py).

    python 07_deeplab/predict.py runs/07_deeplab/best.pth photo.jpg [more.jpg ...]
    python 07_deeplab/predict.py runs/07_deeplab/best.pth photo.jpg --crf --crf-iterations 10 --crf-bilateral-rgb 5

Writes `<stem>_mask.png` (VOC palette, the image's size) and `<stem>_overlay.png` per image (common/seg_predict.py).
The CRF needs the logits at full image size; it uses the RGB pixels (0-255) for its appearance kernel.
"""
import argparse
import dataclasses
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import seg_predict  # noqa: E402
from common.errors import UserError, cli_main  # noqa: E402
from crf import CRFParams, crf_refine  # noqa: E402
from model import build_model  # noqa: E402

CRF_HELP = {"iterations": "mean-field iterations", "window": "odd window size replacing the fully connected sum",
            "dilation": "spacing of the window taps in pixels", "bilateral_weight": "w1, appearance kernel weight",
            "bilateral_xy": "θα, appearance kernel position std (pixels)",
            "bilateral_rgb": "θβ, appearance kernel colour std (RGB 0-255)",
            "spatial_weight": "w2, smoothness kernel weight", "spatial_xy": "θγ, smoothness kernel std (pixels)"}


def get_args_parser() -> argparse.ArgumentParser:
    parser = seg_predict.get_args_parser(__doc__)
    parser.add_argument("--crf", action="store_true",
                        help="refine with the mean-field CRF (DeepLab V1/V2 post-processing)")
    group = parser.add_argument_group("CRF parameters (used with --crf)")
    for f in dataclasses.fields(CRFParams):
        group.add_argument(f"--crf-{f.name.replace('_', '-')}", type=type(f.default), default=f.default,
                           help=f"{CRF_HELP[f.name]} (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    postprocess = None
    if args.crf:
        try:
            params = CRFParams(**{f.name: getattr(args, f"crf_{f.name}") for f in dataclasses.fields(CRFParams)})
        except ValueError as exc:
            raise UserError(str(exc)) from None
        postprocess = partial(crf_refine, params=params)
    return seg_predict.run(args, build_model, postprocess)


if __name__ == "__main__":
    cli_main(lambda: sys.exit(main()))
