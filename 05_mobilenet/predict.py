"""Classify images with a checkpoint from 05_mobilenet/train.py (model, α, classes and preprocessing come from the file).

    python 05_mobilenet/predict.py runs/05_mobilenet/best.pth rose.jpg tulip.jpg --topk 3
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
