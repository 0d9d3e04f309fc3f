"""Step time of our MobileNetV2 / GoogLeNet (torchvision_compat) vs torchvision's: same input, process and device.

Both models get the same weights (ours loads torchvision's state_dict strictly), the same batch and the same optimizer;
they run interleaved round by round (see timing.py). Time ratio = ours / torchvision, the median over rounds of the ratio
within a round. Target: ≤ 1.05. Two controls say how far to trust the ratio on a busy machine:
- "same ops": the profiler's list of aten operators with their input shapes for one training step, ours vs torchvision's
  (a deterministic check: equal lists mean equal work);
- "A/A": a second copy of our model timed in the same rounds; its ratio to the first copy is pure measurement noise.

    python benchmarks/model_step_time.py --threads 1     # ~3 minutes on a 2-core CPU
    python benchmarks/model_step_time.py --device cuda   # on a GPU (timing.py waits for the GPU around each timed call)
"""
from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable

import torch
import torchvision
from torch import nn
from torch.profiler import ProfilerActivity, profile

from timing import interleave, load, machine, median, paired_ratio, table


def loss_of(output: torch.Tensor | tuple, target: torch.Tensor) -> torch.Tensor:
    """CE on the main logits plus 0.3 × each aux head (both models return a tuple with main first in train mode)."""
    if isinstance(output, torch.Tensor):
        return nn.functional.cross_entropy(output, target)
    main, *aux = output
    return nn.functional.cross_entropy(main, target) + 0.3 * sum(nn.functional.cross_entropy(a, target) for a in aux)


def step_fn(model: nn.Module, mode: str, x: torch.Tensor, y: torch.Tensor) -> Callable[[], int]:
    """One training step (forward, loss, backward, SGD update) or one eval forward; returns the images processed."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def train_step() -> int:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss_of(model(x), y).backward()
        optimizer.step()
        return len(x)

    @torch.no_grad()
    def eval_forward() -> int:
        model.eval()
        model(x)
        return len(x)

    return train_step if mode == "train step" else eval_forward


def aten_ops(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Counter:
    """(operator, input shapes) → count for one training step (after a warm-up step)."""
    step = step_fn(model, "train step", x, y)
    step()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step()
    return Counter((e.name, str(e.input_shapes)) for e in prof.events() if e.name.startswith("aten::"))


def main(argv: list[str] | None = None) -> list[list]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=8, help="images per step (default: %(default)s)")
    parser.add_argument("--image-size", type=int, default=224, help="input side (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved timing rounds (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's, all cores)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (benchmarks/gpu.sh passes cuda)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"  # as train.py on CUDA; the warm-up round pays for it
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    mobilenet, googlenet = load("05_mobilenet", "model"), load("09_googlenet", "model")
    pairs = {  # name: (build ours, torchvision's model)
        "mobilenet_v2": (lambda: mobilenet.build_model("mobilenet_v2", 1000), torchvision.models.mobilenet_v2()),
        "googlenet (compat, aux)": (lambda: googlenet.build_model("googlenet", 1000, torchvision_compat=True),
                                    torchvision.models.googlenet(aux_logits=True, init_weights=True)),
    }
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    y = torch.randint(0, 1000, (args.batch_size,), device=device)
    rows = []
    for name, (build, reference) in pairs.items():
        ours, copy = build(), build()
        ours.load_state_dict(reference.state_dict(), strict=True)
        copy.load_state_dict(reference.state_dict(), strict=True)
        ours, copy, reference = ours.to(device), copy.to(device), reference.to(device)
        same_ops = aten_ops(ours, x[:2], y[:2]) == aten_ops(reference, x[:2], y[:2])
        for mode in ("train step", "eval forward"):
            results = interleave({"ours": step_fn(ours, mode, x, y), "torchvision": step_fn(reference, mode, x, y),
                                  "ours again": step_fn(copy, mode, x, y)}, rounds=args.rounds)
            ms = {k: 1e3 * args.batch_size / median(v) for k, v in results.items()}
            rows.append([name, mode, same_ops, ms["ours"], ms["torchvision"],
                         paired_ratio(results, "torchvision", "ours"), paired_ratio(results, "ours", "ours again")])
    print(f"{machine()}; {device}, batch {args.batch_size}, {args.image_size}x{args.image_size}, {args.rounds} rounds")
    print(table(["model", "measured", "same ops", "ours (ms)", "torchvision (ms)", "time ratio ours / torchvision",
                 "A/A ratio (noise)"], rows))
    return rows


if __name__ == "__main__":
    main()
