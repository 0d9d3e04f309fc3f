"""CIFAR input pipeline, images/s with no model: the notes' DataLoader pipeline against common.tensor_loader.TensorLoader.

The notes build a batch by turning every image into a PIL image, then into a tensor (ToTensor), then collating 64 of them,
in Python, every epoch. TensorLoader holds the uint8 images as one tensor (on the GPU when training there) and builds a batch
with one gather, then crops, flips and normalises the whole batch at once. Both produce the same float N×3×32×32 batches.
Three settings, each as 03_cifar_train/train.py uses it: the notes' ToTensor only; train.py's default (+ Normalize(0.5, 0.5));
train.py --augment (+ RandomCrop(32, padding=4) and RandomHorizontalFlip). Data: CIFAR-sized synthetic images
(common.synthetic.SyntheticShapes, whose __getitem__ is torchvision CIFAR10's: Image.fromarray, then the transform).
Target: TensorLoader ≥ 20× the notes' pipeline (CPU here, both on the CPU).

    python benchmarks/input_pipeline.py                 # ~1 minute on a 2-core CPU
"""
from __future__ import annotations

import argparse
import copy

import torch
from torch.utils.data import DataLoader
from torchvision import transforms

from timing import add_clock_args, apply_clock_args, interleave, machine, median, paired_ratio, table


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=6400, help="images per epoch (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds; medians are reported (default: %(default)s)")
    add_clock_args(parser)
    args = parser.parse_args(argv)
    apply_clock_args(args)
    from common.synthetic import SyntheticShapes
    from common.tensor_loader import TensorLoader

    data = SyntheticShapes(args.images, seed=0)
    half = ([0.5] * 3, [0.5] * 3)
    settings = {
        "ToTensor (the notes)": ([transforms.ToTensor()], {}),
        "+ Normalize (train.py default)": ([transforms.ToTensor(), transforms.Normalize(*half)],
                                           dict(mean=half[0], std=half[1])),
        "+ RandomCrop(4) + flip (--augment)": ([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                                transforms.ToTensor(), transforms.Normalize(*half)],
                                               dict(mean=half[0], std=half[1], crop_padding=4, flip=True)),
    }
    rows, ratios = [], {}
    for name, (pipeline, options) in settings.items():
        dataset = copy.copy(data)
        dataset.transform = transforms.Compose(pipeline)
        notes_loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=0)
        tensor_loader = TensorLoader(data.data, data.targets, args.batch_size, train=True, drop_last=False, **options)
        first_notes, first_tensor = next(iter(notes_loader))[0], next(iter(tensor_loader))[0]
        assert first_notes.shape == first_tensor.shape and first_notes.dtype == first_tensor.dtype

        def epoch(loader) -> int:
            return sum(len(images) for images, _ in loader)

        results = interleave({"notes": lambda: epoch(notes_loader), "tensor": lambda: epoch(tensor_loader)},
                             args.rounds, clock=args.clock)
        ratios[name] = paired_ratio(results, "tensor", "notes")
        rows.append((name, median(results["notes"]), median(results["tensor"]), ratios[name]))
    print(f"CIFAR input pipeline, batch {args.batch_size}, {args.images} images per epoch, CPU, "
          f"{args.rounds} interleaved rounds (median), {args.clock} clock; target >= 20x")
    print(machine())
    print(table(["pipeline", "notes' DataLoader images/s", "TensorLoader images/s", "speed-up"], rows))
    return ratios


if __name__ == "__main__":
    main()
