"""Classify images with a checkpoint from 03_cifar_train/train.py (the notes' 保存模型/加载模型, method 2).

    python 03_cifar_train/predict.py runs/03_cifar_train/best.pth cat.jpg dog.png --topk 3

Images are resized to 32×32 as in the notes. A method-1 file (`torch.save(model)`, see --save-full-model) only loads with
--unsafe-pickle, because unpickling it can run arbitrary code.
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
