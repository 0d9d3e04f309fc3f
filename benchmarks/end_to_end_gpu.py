"""End to end on a GPU: the notes' gpu版本 loop against 03_cifar_train/train.py with its defaults, same data, same GPU.

Both train the notes' Tudui net for 10 epochs (SGD lr 1e-2, batch 64) on the same images, in this one process:
- notes: the notes' gpu版本 code as written (DataLoader + ToTensor, batch 64, shuffle, num_workers 0, `.cuda()` per batch,
  `loss.item()` + TensorBoard every 100 steps, a `loss.item()` per test batch); only its prints are left out. With
  `--notes-transform normalize` (the default) ToTensor is followed by the transforms section's Normalize([0.5]*3,
  [0.5]*3), which train.py applies too: without it this activation-free net stays at chance on the synthetic set in 10
  epochs (0.100 on an H200, benchmarks/README.md), and an accuracy comparison would say nothing;
- train.py: `03_cifar_train/train.py` with its defaults (device-resident TensorLoader, bf16 autocast, channels_last,
  cudnn.benchmark, no per-step host sync, checkpoints and TensorBoard each epoch) called in-process with the same data;
- every `--variant="FLAGS"` adds a train.py row with extra flags (e.g. "--compile" or "--loader dataloader -j 4").
Wall time covers building the loaders to the last evaluation (data generation excluded, identical for both); accuracy is
the test accuracy after the last epoch. Target (issue 8): train.py ≥ 15× faster at equal accuracy (±1 %).
The physical ceiling: the bare forward/backward/step loop on one pre-made device batch of 64 (train.py's AMP and
memory format), as many steps as the 10 epochs train, eager and (on CUDA) captured whole as one CUDA graph per step;
the last column gives each train.py row's images/s as a share of the eager ceiling (theirs includes evaluation). A row
that fails prints its error in the table and the others still run.
CIFAR-10 is used with `--data cifar10` when it is already under --data-path (the GPU machines here have no internet);
otherwise synthetic data of CIFAR-10's size (common.synthetic.SyntheticShapes, 50000 + 10000 32×32 images).

    python benchmarks/end_to_end_gpu.py                               # CUDA; ~1-2 minutes on one H100
    python benchmarks/end_to_end_gpu.py --device cpu --train-size 512 --test-size 128 --epochs 1   # checks the code on a CPU
"""
from __future__ import annotations

import argparse
import copy
import math
import shlex
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter

from timing import load, machine, table

from common.errors import UserError, cli_main  # timing put the repo root on sys.path


def notes_loop(model: nn.Module, train_data, test_data, device: torch.device, epochs: int, log_dir: Path) -> float:
    """The notes' gpu版本 training script (`.cuda()` written as `.to(device)`); returns the final test accuracy."""
    test_data_size = len(test_data)
    train_loader = DataLoader(dataset=train_data, batch_size=64, shuffle=True)
    test_loader = DataLoader(dataset=test_data, batch_size=64, shuffle=False)
    tudui = model.to(device)
    loss_fn = nn.CrossEntropyLoss().to(device)
    learning_rate = 1e-2
    optimizer = torch.optim.SGD(tudui.parameters(), lr=learning_rate)
    total_train_step, total_test_step = 0, 0
    writer = SummaryWriter(str(log_dir))
    total_accuracy = 0
    for _ in range(epochs):
        for data in train_loader:
            imgs, targets = data
            imgs, targets = imgs.to(device), targets.to(device)
            outputs = tudui(imgs)
            loss = loss_fn(outputs, targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_train_step = total_train_step + 1
            if total_train_step % 100 == 0:
                writer.add_scalar("train_loss", loss.item(), total_train_step)
        total_test_loss, total_accuracy = 0, 0
        with torch.no_grad():
            for data in test_loader:
                imgs, targets = data
                imgs, targets = imgs.to(device), targets.to(device)
                outputs = tudui(imgs)
                loss = loss_fn(outputs, targets)
                total_test_loss = total_test_loss + loss.item()
                total_accuracy = total_accuracy + (outputs.argmax(1) == targets).sum()
        writer.add_scalar("test_accuracy", total_accuracy / test_data_size, total_test_step)
        writer.add_scalar("test_loss", total_test_loss, total_test_step)
        total_test_step = total_test_step + 1
    writer.close()
    return float(total_accuracy / test_data_size)


def load_data(args: argparse.Namespace):
    """(train set, test set, class names): CIFAR-10 when asked for (must already be on disk), else synthetic."""
    if args.data == "cifar10":
        try:
            train = torchvision.datasets.CIFAR10(root=args.data_path, train=True, download=False)
            test = torchvision.datasets.CIFAR10(root=args.data_path, train=False, download=False)
        except RuntimeError:
            raise UserError(f"CIFAR-10 not found under {args.data_path}; run 03_cifar_train/train.py --download once, "
                            "or use --data synthetic") from None
        return train, test, train.classes
    from common.synthetic import SyntheticShapes
    train = SyntheticShapes(args.train_size, seed=args.seed, split="train")
    return train, SyntheticShapes(args.test_size, seed=args.seed, split="test"), train.classes


def ceiling(model: nn.Module, device: torch.device, steps: int, graph: bool) -> float:
    """Seconds for `steps` bare SGD steps of `model` on one fixed device batch of 64, with train.py's CUDA defaults
    (bf16 autocast, channels_last); `graph` captures the whole step once and replays it (PyTorch's whole-network
    capture recipe), which removes every per-kernel launch cost: the most this GPU can do for this net and batch."""
    on_cuda = device.type == "cuda"
    fmt = torch.channels_last if on_cuda else torch.contiguous_format
    model = model.to(device, memory_format=fmt)
    x = torch.randn(64, 3, 32, 32, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (64,), device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=False)  # graph capture needs the .grad tensors to stay where they are
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=on_cuda):
            loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()

    run = step
    if graph:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up on a side stream, as the capture recipe asks
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(side)
        cuda_graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(cuda_graph):
            step()
        run = cuda_graph.replay
    for _ in range(10):
        run()
    if on_cuda:
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        run()
    if on_cuda:
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def warm_up(device: torch.device) -> None:
    """Create the CUDA context and cuDNN/cuBLAS handles before anything is timed, so neither side pays for them."""
    model = load("03_cifar_train", "model").Tudui().to(device)
    model(torch.randn(64, 3, 32, 32, device=device)).sum().backward()
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu (default: %(default)s)")
    parser.add_argument("--data", default="synthetic", choices=("synthetic", "cifar10"),
                        help="CIFAR-size synthetic images, or the real CIFAR-10 in --data-path (default: %(default)s)")
    parser.add_argument("--data-path", type=Path, default=Path("data"), help="where CIFAR-10 lives (default: ./data)")
    parser.add_argument("--train-size", type=int, default=50000, help="synthetic training images (default: CIFAR's)")
    parser.add_argument("--test-size", type=int, default=10000, help="synthetic test images (default: CIFAR's)")
    parser.add_argument("--epochs", type=int, default=10, help="the notes' 10 (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every run (default: %(default)s)")
    parser.add_argument("--variant", action="append", default=[], metavar="FLAGS",
                        help="extra train.py flags for one more row, e.g. --variant=--cuda-graph (with '=', as "
                             "the value starts with --) (repeatable)")
    parser.add_argument("--skip-notes", action="store_true", help="time only the train.py rows")
    parser.add_argument("--notes-transform", default="normalize", choices=("totensor", "normalize"),
                        help="the notes' loop's transform: ToTensor as written, or + Normalize as train.py "
                             "(default: %(default)s)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("CUDA is not available on this machine; pass --device cpu to check the code path on a CPU")
    train_set, test_set, classes = load_data(args)
    train_mod = load("03_cifar_train", "train")
    warm_up(device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_notes:
            torch.backends.cudnn.benchmark = False  # PyTorch's defaults, which the notes' script runs with
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.manual_seed(args.seed)
            notes_train, notes_test = copy.copy(train_set), copy.copy(test_set)
            transform = [torchvision.transforms.ToTensor()]
            if args.notes_transform == "normalize":
                transform.append(torchvision.transforms.Normalize([0.5] * 3, [0.5] * 3))
            notes_train.transform = notes_test.transform = torchvision.transforms.Compose(transform)
            model = train_mod.build_model("tudui", num_classes=len(classes))
            start = time.perf_counter()
            accuracy = notes_loop(model, notes_train, notes_test, device, args.epochs, Path(tmp) / "notes")
            what = "+ Normalize" if args.notes_transform == "normalize" else "ToTensor only"
            rows.append({"run": f"notes' gpu版本 loop ({what})", "seconds": time.perf_counter() - start,
                         "accuracy": accuracy})
        for i, extra in enumerate(["", *args.variant]):
            # train.py exactly as on the command line, except that it gets the data built above
            train_mod.load_data = lambda _args: (copy.copy(train_set), copy.copy(test_set), list(classes))
            argv_train = ["--data", args.data, "--device", args.device, "--epochs", str(args.epochs),
                          "--seed", str(args.seed), "--output-dir", str(Path(tmp) / f"train{i}"), *shlex.split(extra)]
            name = "03_cifar_train/train.py" + (f" {extra}" if extra else " (defaults)")
            start = time.perf_counter()
            try:
                summary = train_mod.main(argv_train)
            except Exception as exc:  # noqa: BLE001 - one failed variant must not hide the other rows' numbers
                rows.append({"run": name, "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:120]}"})
                continue
            rows.append({"run": name, "seconds": time.perf_counter() - start,
                         "accuracy": summary["metrics"]["accuracy"]})
    steps = args.epochs * math.ceil(len(train_set) / 64)
    ceilings = {"ceiling: bare loop, one device batch (eager)": False}
    if device.type == "cuda":
        ceilings["ceiling: bare loop, one device batch (CUDA graph)"] = True
    for name, graph in ceilings.items():
        seconds = ceiling(train_mod.build_model("tudui", num_classes=len(classes)), device, steps, graph)
        rows.append({"run": name, "seconds": seconds, "images": steps * 64})
    base = None if args.skip_notes else rows[0]
    eager = rows[-len(ceilings)]  # the first ceiling row
    images = args.epochs * len(train_set)
    print(f"End to end: Tudui, {args.epochs} epochs, {len(train_set)} train / {len(test_set)} test images ({args.data}), "
          f"device {args.device}; target: train.py >= 15x faster at equal accuracy (+-1%)")
    print(machine())
    ceiling_rate = eager["images"] / eager["seconds"]

    def cells(r: dict) -> tuple:
        if "error" in r:
            return r["run"], "FAILED", r["error"], "-", "-", "-", "-"
        rate = r.get("images", images) / r["seconds"]
        accuracy = r.get("accuracy")
        return (r["run"], f"{r['seconds']:.1f}", f"{rate:,.0f}", "-" if accuracy is None else f"{accuracy:.4f}",
                f"{base['seconds'] / r['seconds']:.1f}x" if base and accuracy is not None else "-",
                f"{accuracy - base['accuracy']:+.4f}" if base and accuracy is not None else "-",
                f"{rate / ceiling_rate:.2f}")
    print(table(["run", "wall s", "train images/s (incl. eval)", "final test accuracy", "speed-up", "accuracy - notes'",
                 "÷ eager ceiling"], [cells(r) for r in rows]))
    return rows


if __name__ == "__main__":
    cli_main(main)
