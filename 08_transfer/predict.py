"""Classify images with a checkpoint from 08_transfer/train.py, whatever --method made it.

    python 08_transfer/predict.py runs/08_transfer/best.pth ant.jpg bee.png --topk 2

Even a `features` run's checkpoint holds the whole model (backbone + trained classifier), so it classifies images; the
checkpoint's own preprocessing (resize, centre crop, ImageNet normalisation) is applied.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common.errors import cli_main  # noqa: E402
from common.predict import classify_main  # noqa: E402
from model import build_model  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return classify_main(argv, build_model, description=__doc__)


if __name__ == "__main__":
    cli_main(lambda: sys.exit(main()))
