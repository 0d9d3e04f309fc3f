"""Segment images with a checkpoint from 06_fcn/train.py: a VOC-palette mask PNG and an overlay PNG per image.

    python 06_fcn/predict.py runs/06_fcn/best.pth street.jpg cat.png --output-dir predictions/

FCN has no fully connected layer, so every image is segmented at its own size (any H×W, odd sizes included).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common.errors import cli_main  # noqa: E402
from common.seg_predict import segment_main  # noqa: E402
from model import build_model  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return segment_main(argv, build_model, description=__doc__)


if __name__ == "__main__":
    cli_main(lambda: sys.exit(main()))
