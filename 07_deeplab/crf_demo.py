"""How much the CRF repairs a noisy, blurred prediction on synthetic images (the README's CRF numbers; the test's data).

    python 07_deeplab/crf_demo.py                       # 16 images, iterations 0 1 2 5 10
    python 07_deeplab/crf_demo.py --crf-window 7 --crf-dilation 1
    python 07_deeplab/crf_demo.py --checkpoint runs/07_deeplab/compare/deeplabv2/last.pth   # a trained model's scores
    python 07_deeplab/crf_demo.py --memory 1411 1411                # peak memory of one CRF run (README, CRF memory)

The "prediction" is the true mask, blurred by a 7×7 box (rounded corners, thin bars and small objects fade) plus
Gaussian logit noise (speckle): the two faults the notes say V1/V2's CRF fixes at object boundaries. With --checkpoint
it is a trained model's softmax on the synthetic validation images instead.
"""
import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from common.errors import cli_main  # noqa: E402
from common.metrics import ConfusionMatrix  # noqa: E402
from common.predict import load_for_prediction  # noqa: E402
from common.segmentation import MEAN, STD, normalize  # noqa: E402
from common.synthetic import SyntheticSegmentation  # noqa: E402
from crf import CRF_HELP, CRFParams, crf_refine, memory_bytes  # noqa: E402
from model import build_model  # noqa: E402


def noisy_blurred_predictions(n: int, blur: int = 7, noise: float = 0.8, seed: int = 0
                              ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(RGB 1×3×64×64 in 0-255, label 1×64×64 with VOC's 255 band, probabilities 1×6×64×64) per synthetic image."""
    g = torch.Generator().manual_seed(seed)
    data = SyntheticSegmentation(size=n, image_size=64, seed=seed, split="val")
    out = []
    for i in range(n):
        image, mask = (torch.from_numpy(a) for a in data.sample(i))
        label = mask.long()[None]
        onehot = F.one_hot(label.masked_fill(label == 255, 0), len(data.classes)).permute(0, 3, 1, 2).float()
        logits = 3 * F.avg_pool2d(onehot, blur, 1, blur // 2, count_include_pad=False)
        logits = logits + noise * torch.randn(onehot.shape, generator=g)
        out.append((image.permute(2, 0, 1)[None].float(), label, logits.softmax(1)))
    return out


@torch.inference_mode()
def model_predictions(checkpoint: Path, n: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The same triples with a trained model's probabilities on the synthetic validation images (train.py's val)."""
    model, _, preprocess = load_for_prediction(checkpoint, build_model)
    data = SyntheticSegmentation(size=n, image_size=64, split="val")
    out = []
    for i in range(n):
        image, mask = (torch.from_numpy(a) for a in data.sample(i))
        rgb = image.permute(2, 0, 1)[None]
        logits = model(normalize(rgb, preprocess.get("mean") or MEAN, preprocess.get("std") or STD))
        out.append((rgb.float(), mask.long()[None], logits.softmax(1)))
    return out


def crf_memory(height: int, width: int, classes: int, params: CRFParams) -> dict[str, float]:
    """Peak resident memory that `crf_refine` adds on one random H×W image of `classes` classes, next to its
    estimate (`crf.memory_bytes`), in MB, and its seconds. Resident memory, not a tensor count, because that is what
    runs out; one size per process, since the peak (ru_maxrss) never goes down."""
    import resource  # Unix only: imported here so that the demo itself runs anywhere

    g = torch.Generator().manual_seed(0)
    probs = torch.rand(1, classes, height, width, generator=g)
    probs /= probs.sum(1, keepdim=True)  # in place: a freed temporary would raise the baseline peak
    image = torch.rand(1, 3, height, width, generator=g).mul_(255)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    crf_refine(probs, image, params)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"measured_mb": (peak - before) / 1024, "estimate_mb": memory_bytes(probs.shape, params) / 2 ** 20,
            "seconds": seconds}


def main(argv: list[str] | None = None) -> dict[int, float] | dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=16, help="synthetic images measured (default: %(default)s)")
    parser.add_argument("--iterations", type=int, nargs="+", default=[0, 1, 2, 5, 10],
                        help="mean-field iteration counts to compare (default: 0 1 2 5 10)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="use this model's predictions (train.py output)")
    parser.add_argument("--memory", type=int, nargs=2, metavar=("H", "W"), default=None,
                        help="instead: peak memory of one CRF run (5 iterations, the --crf-* flags) on a random H×W "
                             "image of --classes classes")
    parser.add_argument("--classes", type=int, default=21, help="with --memory (default: %(default)s, VOC)")
    for f in dataclasses.fields(CRFParams):
        if f.name != "iterations":
            parser.add_argument(f"--crf-{f.name.replace('_', '-')}", type=type(f.default), default=f.default,
                                help=f"{CRF_HELP[f.name]} (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.memory:
        params = CRFParams(**{f.name: getattr(args, f"crf_{f.name}") for f in dataclasses.fields(CRFParams)
                              if f.name != "iterations"})
        result = crf_memory(*args.memory, args.classes, params)
        print(f"| {args.memory[1]}×{args.memory[0]} | {args.classes} | {params.tile} | "
              f"{result['measured_mb']:.0f} MB | {result['estimate_mb']:.0f} MB | {result['seconds']:.1f} s |")
        return result
    if args.checkpoint:
        data = model_predictions(args.checkpoint, args.images)
    else:
        data = noisy_blurred_predictions(args.images)
    results = {}
    print("| CRF iterations | mIoU | pixel accuracy | seconds per 64×64 image |")
    print("| --- | --- | --- | --- |")
    for iterations in args.iterations:
        params = CRFParams(iterations=iterations, **{f.name: getattr(args, f"crf_{f.name}")
                                                     for f in dataclasses.fields(CRFParams) if f.name != "iterations"})
        cm, start = ConfusionMatrix(6), time.perf_counter()
        for image, label, probs in data:
            cm.update(crf_refine(probs, image, params), label)
        seconds = (time.perf_counter() - start) / len(data)
        scores = cm.compute()
        results[iterations] = scores["miou"]
        print(f"| {iterations} | {scores['miou']:.3f} | {scores['pixel_accuracy']:.3f} | {seconds:.3f} |")
    return results


if __name__ == "__main__":
    cli_main(main)
