"""Segmentation input pipeline, images/s with no model: VOC-size JPEG + palette PNG through scale / pad / crop / flip.

Files: VOC2012's layout with 500×375 JPEGs (quality 90) and palette PNG masks drawn by common.synthetic, read through the
repo's VOC reader. Every pipeline does the same work per sample: decode both files, scale by s ∈ [0.5, 2] (image bilinear,
mask nearest), pad to the 480 crop (image 0, mask 255), random 480×480 crop, flip with probability ½, normalise, int64 mask.
- plain PIL: torchvision.transforms.functional on PIL images, then to_tensor + normalize (the torchvision references' way);
- repo: common.segmentation's dataset and train transform, exactly as 04/06/07 train with them (PIL decodes; the uint8
  image is resized by torchvision.transforms.v2 on its H×W×3 layout, cropped, made contiguous, padded; the mask is read
  only at the crop's nearest-neighbour indices);
- PIL decode + tensor ops: PIL decodes, then the uint8 tensors are resized (torchvision.transforms.v2, whose uint8 bilinear
  resize is vectorised), padded, cropped, flipped and normalised as tensors, the whole mask resized too;
- torchvision.io + tensor ops: the same with torchvision.io decoding (deprecated since torchvision 0.29 in favour of
  TorchCodec, so measured, not adopted).
Decoding alone (PIL vs torchvision.io) and the repo's pipeline through a DataLoader with 0 and 2 workers are measured too.

    python benchmarks/seg_pipeline.py --threads 1 --clock cpu --rounds 15   # the README's table, ~40 s on 2 CPUs
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
import torchvision.transforms.v2.functional as F2
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.io import decode_jpeg, decode_png, read_file

from timing import add_clock_args, apply_clock_args, interleave, machine, median, paired_ratio, table

CROP = 480


def write_voc_size(root: Path, count: int) -> Path:
    """`count` 500×375 image/mask pairs in VOC2012's layout (train split); returns the VOC2012 folder."""
    from common.palette import to_palette_image
    from common.synthetic import SyntheticSegmentation

    voc = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    drawn = SyntheticSegmentation(size=count, image_size=500, num_classes=6)
    names = []
    for i in range(count):
        image, mask = drawn.sample(i)
        name = f"2007_{i:06d}"
        Image.fromarray(image[:375]).save(voc / "JPEGImages" / f"{name}.jpg", quality=90)
        to_palette_image(mask[:375]).save(voc / "SegmentationClass" / f"{name}.png")
        names.append(name)
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(names) + "\n")
    return voc


def scale_size(h: int, w: int) -> tuple[int, int]:
    s = 0.5 + 1.5 * torch.rand(()).item()
    return max(1, round(h * s)), max(1, round(w * s))


def crop_box(h: int, w: int) -> tuple[int, int]:
    return int(torch.randint(0, h - CROP + 1, ())), int(torch.randint(0, w - CROP + 1, ()))


def plain_pil(image_path: Path, mask_path: Path, mean, std) -> tuple[torch.Tensor, torch.Tensor]:
    image, mask = Image.open(image_path).convert("RGB"), Image.open(mask_path)
    h, w = scale_size(image.height, image.width)
    image = TF.resize(image, [h, w], interpolation=TF.InterpolationMode.BILINEAR)
    mask = TF.resize(mask, [h, w], interpolation=TF.InterpolationMode.NEAREST)
    pad = [0, 0, max(CROP - w, 0), max(CROP - h, 0)]
    image, mask = TF.pad(image, pad, fill=0), TF.pad(mask, pad, fill=255)
    top, left = crop_box(image.height, image.width)
    image, mask = TF.crop(image, top, left, CROP, CROP), TF.crop(mask, top, left, CROP, CROP)
    if torch.rand(()).item() < 0.5:
        image, mask = TF.hflip(image), TF.hflip(mask)
    return TF.normalize(TF.to_tensor(image), mean, std), torch.as_tensor(np.array(mask), dtype=torch.int64)


def decode_pil(image_path: Path, mask_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 3×H×W image and 1×H×W mask indices through PIL."""
    image = torch.from_numpy(np.array(Image.open(image_path).convert("RGB"))).permute(2, 0, 1)
    return image, torch.from_numpy(np.array(Image.open(mask_path)))[None]


def decode_tvio(image_path: Path, mask_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The same through torchvision.io (a palette PNG decodes to its indices)."""
    return decode_jpeg(read_file(str(image_path))), decode_png(read_file(str(mask_path)))


def tensor_pipeline(image_path: Path, mask_path: Path, mean: torch.Tensor, std: torch.Tensor, decode
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    image, mask = decode(image_path, mask_path)
    h, w = scale_size(*image.shape[1:])
    image = F2.resize(image, [h, w], antialias=True)
    mask = F2.resize(mask, [h, w], interpolation=F2.InterpolationMode.NEAREST)
    pad = (0, max(CROP - w, 0), 0, max(CROP - h, 0))
    image, mask = F.pad(image, pad, value=0), F.pad(mask, pad, value=255)
    top, left = crop_box(*image.shape[1:])
    image, mask = image[:, top:top + CROP, left:left + CROP], mask[0, top:top + CROP, left:left + CROP]
    if torch.rand(()).item() < 0.5:
        image, mask = image.flip(-1), mask.flip(-1)
    return image.float().div_(255).sub_(mean).div_(std), mask.long()


def main(argv: list[str] | None = None) -> list[tuple]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=24, help="image/mask pairs per round (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds; medians are reported (default: %(default)s)")
    add_clock_args(parser)
    args = parser.parse_args(argv)
    apply_clock_args(args)
    from common import segmentation

    warnings.filterwarnings("ignore", message="The image decoding", category=DeprecationWarning)
    with tempfile.TemporaryDirectory() as tmp:
        voc = write_voc_size(Path(tmp), args.images)
        repo = segmentation.VOCSegmentationFiles(Path(tmp), "train", segmentation.SegTrainTransform(CROP))
        pairs = list(zip(repo.images, repo.masks))
        mean, std = segmentation.MEAN, segmentation.STD
        mean_t, std_t = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
        jpeg_bytes = np.mean([p.stat().st_size for p in (voc / "JPEGImages").iterdir()]) / 1024

        def each(fn) -> int:
            for image_path, mask_path in pairs:
                fn(image_path, mask_path)
            return len(pairs)

        decode = interleave({
            "jpeg PIL": lambda: each(lambda i, m: np.asarray(Image.open(i).convert("RGB"))),
            "jpeg tv.io": lambda: each(lambda i, m: decode_jpeg(read_file(str(i)))),
            "png PIL": lambda: each(lambda i, m: np.asarray(Image.open(m))),
            "png tv.io": lambda: each(lambda i, m: decode_png(read_file(str(m)))),
        }, args.rounds, clock=args.clock)
        full = interleave({
            "plain": lambda: each(lambda i, m: plain_pil(i, m, mean, std)),
            "repo": lambda: sum(1 for _ in (repo[k] for k in range(len(repo)))),
            "pil+tensor": lambda: each(lambda i, m: tensor_pipeline(i, m, mean_t, std_t, decode_pil)),
            "tvio+tensor": lambda: each(lambda i, m: tensor_pipeline(i, m, mean_t, std_t, decode_tvio)),
        }, args.rounds, clock=args.clock)
        loaders = {}
        for workers in (0, 2):
            dataset = copy.copy(repo)
            loaders[workers] = DataLoader(dataset, batch_size=8, shuffle=True, num_workers=workers,
                                          persistent_workers=workers > 0, collate_fn=segmentation.collate_pad)
        batched = interleave({f"-j {w}": (lambda w=w: sum(len(x) for x, _ in loaders[w])) for w in loaders},
                             args.rounds)  # wall clock: the CPU clock would not see the workers' time
        del loaders
    rows = [
        ("decode JPEG 500x375 (RGB)", "PIL", median(decode["jpeg PIL"]), "torchvision.io",
         median(decode["jpeg tv.io"]), paired_ratio(decode, "jpeg tv.io", "jpeg PIL")),
        ("decode PNG mask (palette indices)", "PIL", median(decode["png PIL"]), "torchvision.io",
         median(decode["png tv.io"]), paired_ratio(decode, "png tv.io", "png PIL")),
        ("train pipeline (decode, scale, pad, crop 480, flip, normalize)", "plain PIL", median(full["plain"]),
         "repo (common.segmentation)", median(full["repo"]), paired_ratio(full, "repo", "plain")),
        ("train pipeline (same)", "plain PIL", median(full["plain"]), "PIL decode + tensor ops",
         median(full["pil+tensor"]), paired_ratio(full, "pil+tensor", "plain")),
        ("train pipeline (same)", "plain PIL", median(full["plain"]), "torchvision.io + tensor ops",
         median(full["tvio+tensor"]), paired_ratio(full, "tvio+tensor", "plain")),
        ("repo pipeline through DataLoader, batch 8", "-j 0", median(batched["-j 0"]), "-j 2",
         median(batched["-j 2"]), paired_ratio(batched, "-j 2", "-j 0")),
    ]
    print(f"Segmentation input pipeline, {args.images} VOC-size pairs (JPEG ~{jpeg_bytes:.0f} KiB), CPU, "
          f"{args.rounds} interleaved rounds (median), {args.clock} clock (DataLoader row: wall clock), images/s")
    print(machine())
    print(table(["what", "A", "A images/s", "B", "B images/s", "B / A"],
                [(w, a, f"{ra:,.1f}", b, f"{rb:,.1f}", f"{ratio:.2f}x") for w, a, ra, b, rb, ratio in rows]))
    return rows


if __name__ == "__main__":
    main()
