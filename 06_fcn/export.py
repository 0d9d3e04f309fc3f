"""Export a checkpoint of 06_fcn/train.py to ONNX or a torch.export program, checked against PyTorch (common/export.py).

    python 06_fcn/export.py runs/06_fcn/best.pth --format onnx --dynamic
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common.errors import cli_main  # noqa: E402
from common.export import export_main  # noqa: E402
from model import build_model  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    return export_main(argv, build_model, __doc__)


if __name__ == "__main__":
    cli_main(main)
