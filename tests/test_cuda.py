"""The CUDA-only code paths (issue 17): each test runs where CUDA exists and skips cleanly where it does not.

What only a GPU exercises: runtime.setup's CUDA defaults (bf16 autocast, channels_last, cuDNN benchmark, TF32, workers),
a bf16 run that still saves float32 weights a CPU can load, pinned DataLoader memory, predict.py on the GPU agreeing with
the CPU, and `--compile --compile-mode reduce-overhead` (CUDA graphs). TensorLoader on the device and --sync-bn have
their CUDA tests beside their CPU ones (test_tensor_loader.py, test_engine.py).
"""
import argparse
import math
import os

import pytest
import torch
from PIL import Image
from torch.utils.data import TensorDataset

from common import cli, data, runtime
from util import load

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

FAST = ["--data", "synthetic", "--synthetic-size", "256", "-b", "32", "--epochs", "1", "--device", "cuda"]


def test_cuda_defaults_are_bf16_autocast_channels_last_cudnn_benchmark_and_tf32(tmp_path):
    parser = argparse.ArgumentParser()
    cli.add_common_args(parser, folder="x", data_choices=("synthetic",), epochs=1, batch_size=2, lr=0.1)
    args = parser.parse_args(["--device", "cuda", "--output-dir", str(tmp_path / "run")])
    rt = runtime.setup(args)
    expected_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert (rt.device.type, rt.amp_dtype, rt.channels_last) == ("cuda", expected_dtype, True)
    assert torch.backends.cudnn.benchmark and torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert args.workers == min(8, (os.cpu_count() or 1) // torch.cuda.device_count())
    no_amp = parser.parse_args(["--device", "cuda", "--no-amp", "--no-channels-last", "--no-cudnn-benchmark",
                                "--output-dir", str(tmp_path / "run2")])
    rt = runtime.setup(no_amp)
    assert (rt.amp_dtype, rt.channels_last, torch.backends.cudnn.benchmark) == (None, False, False)


def test_a_bf16_cuda_run_saves_float32_weights_and_predicts_on_gpu_as_on_cpu(tmp_path, capsys):
    out = tmp_path / "run"
    summary = load("03_cifar_train", "train").main([*FAST, "--limit-batches", "3", "--output-dir", str(out)])
    assert math.isfinite(summary["metrics"]["loss"])
    ckpt = torch.load(out / "last.pth", map_location="cpu", weights_only=True)
    floats = [v for v in ckpt["model"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float32 for v in floats)  # autocast computes in bf16, keeps fp32 weights
    image = tmp_path / "red.png"
    Image.new("RGB", (40, 30), (200, 30, 30)).save(image)
    predict = load("03_cifar_train", "predict")
    lines = {}
    for device in ("cpu", "cuda"):
        capsys.readouterr()
        assert predict.main([str(out / "last.pth"), str(image), "--device", device]) == 0
        lines[device] = capsys.readouterr().out.split("(")[0]  # the predicted class; the probability may differ a little
    assert lines["cpu"] == lines["cuda"] and lines["cpu"].startswith(f"{image}: ")


def test_the_dataloader_path_pins_host_memory_on_cuda():
    images, labels = torch.rand(8, 3, 4, 4), torch.arange(8)
    args = argparse.Namespace(workers=0, seed=0, batch_size=4, eval_batch_size=None)
    train, val = data.make_loaders(TensorDataset(images, labels), TensorDataset(images, labels), args,
                                   runtime.Runtime(device=torch.device("cuda")))
    assert train.pin_memory and val.pin_memory
    assert next(iter(train))[0].is_pinned()


def test_compile_with_cuda_graphs_trains_and_saves_plain_weights(tmp_path):
    out = tmp_path / "run"
    summary = load("03_cifar_train", "train").main([*FAST, "--limit-batches", "4", "--compile", "--compile-mode",
                                                    "reduce-overhead", "--output-dir", str(out)])
    assert math.isfinite(summary["metrics"]["loss"])
    ckpt = torch.load(out / "last.pth", map_location="cpu", weights_only=True)
    assert not any(k.startswith(("_orig_mod.", "module.")) for k in ckpt["model"])  # predict.py loads it unwrapped
