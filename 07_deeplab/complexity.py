"""Parameters and mult-adds of the four DeepLab versions at 513×513 (the papers' VOC crop), for the README table.

    python 07_deeplab/complexity.py                       # paper backbones
    python 07_deeplab/complexity.py --backbone resnet18   # the light backbone of the synthetic runs

Counting is `common/complexity.py`'s `count_params_and_macs` (conv + linear multiply-accumulates on the meta device,
so no compute and no memory at any size): one counter for the whole repo.
"""
import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from common.complexity import count_params_and_macs  # noqa: E402
from model import BACKBONES, MODELS, build_model  # noqa: E402


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", choices=BACKBONES, default=None, help="default: each version's paper backbone")
    parser.add_argument("--output-stride", type=int, choices=(8, 16), default=None,
                        help="default: each version's paper output stride")
    parser.add_argument("--size", type=int, default=513, help="input side in pixels (default: %(default)s, VOC crops)")
    parser.add_argument("--num-classes", type=int, default=21, help="classes of the head (default: %(default)s, VOC)")
    args = parser.parse_args(argv)
    rows = []
    print(f"| model | backbone | output stride | params | mult-adds at {args.size}×{args.size} |")
    print("| --- | --- | --- | --- | --- |")
    for name in MODELS:
        model = build_model(name, args.num_classes, backbone=args.backbone, output_stride=args.output_stride)
        r = count_params_and_macs(model, args.size)
        rows.append({"model": name, "backbone": model.backbone_name, "output_stride": model.output_stride, **r})
        print(f"| {name} | {model.backbone_name} | {model.output_stride} | {r['params'] / 1e6:.2f}M "
              f"| {r['macs'] / 1e9:.1f}G |")
    return rows


if __name__ == "__main__":
    main()
