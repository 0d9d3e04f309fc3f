"""Classify image files with a checkpoint from 01_dataset/train.py (same CLI as 03_cifar_train/predict.py).

    python 01_dataset/predict.py runs/01_dataset/best.pth data/hymenoptera_data/val/ants/*.jpg

The checkpoint carries the model, the class names ("ants", "bees") and the preprocessing (Resize to S×S, Normalize), so
nothing else is needed. An unreadable image is reported by name and the others still run; the exit code is then 1.
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
