"""Classify images with a checkpoint from 09_googlenet/train.py (model, variant, classes and preprocessing come from the file).

    python 09_googlenet/predict.py runs/09_googlenet/best.pth daisy.jpg --topk 3
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
