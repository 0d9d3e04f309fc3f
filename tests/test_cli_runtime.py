"""common/cli.py and common/runtime.py: every shared flag's default, every rejected value with its message, the device
rules (an explicit CUDA request without CUDA is an error, never a fallback) and what setup() decides on a CPU."""
import argparse
from pathlib import Path

import pytest
import torch

from common import cli, runtime
from common.errors import UserError


def parser(**overrides) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    kwargs = {"folder": "07_x", "data_choices": ("voc",), "epochs": 30, "batch_size": 8, "lr": 0.01, **overrides}
    cli.add_common_args(p, **kwargs)
    return p


def test_defaults_are_the_folders_and_the_notes():
    args = parser().parse_args([])
    expected = {"data": "voc", "data_path": Path("data"), "download": False, "skip_bad": False, "synthetic_size": None,
                "device": "auto",
                "epochs": 30, "batch_size": 8, "eval_batch_size": None, "lr": 0.01, "workers": None, "seed": 0,
                "output_dir": None, "default_output_dir": Path("runs/07_x"), "resume": None, "overwrite": False, "weights": None,
                "test_only": False,
                "limit_batches": None, "amp": None, "channels_last": None, "cudnn_benchmark": True, "compile": False,
                "compile_mode": None, "cuda_graph": False,
                "clip_grad_norm": None, "model_ema": False, "model_ema_decay": 0.999,
                "use_deterministic_algorithms": False, "sync_bn": False, "print_freq": 100}
    assert vars(args) == expected
    cli.check_args(args)  # resolves --output-dir: the folder's default, or next to the --resume checkpoint
    assert args.output_dir == Path("runs/07_x")
    resumed = parser().parse_args(["--resume", "elsewhere/run3/last.pth"])
    cli.check_args(resumed)
    assert resumed.output_dir == Path("elsewhere/run3")
    explicit = parser().parse_args(["--resume", "elsewhere/run3/last.pth", "--output-dir", "new"])
    cli.check_args(explicit)
    assert explicit.output_dir == Path("new")
    assert parser().parse_args(["--data", "synthetic"]).data == "synthetic"  # always offered
    assert parser(default_data="synthetic").parse_args([]).data == "synthetic"
    with pytest.raises(SystemExit):
        parser().parse_args(["--data", "cifar10"])
    flags = parser().parse_args(["-b", "3", "-j", "2", "--no-amp", "--channels-last", "--no-cudnn-benchmark",
                                 "--compile", "--resume", "x.pth"])
    assert (flags.batch_size, flags.workers, flags.amp, flags.channels_last, flags.cudnn_benchmark, flags.compile,
            flags.resume) == (3, 2, False, True, False, True, Path("x.pth"))


def test_help_shows_the_defaults():
    text = " ".join(parser().format_help().split())  # help lines wrap with the terminal width
    assert "(default: 30)" in text and "(default: 8)" in text and "(default: 0.01)" in text
    assert "(default: runs/07_x; with --resume, the checkpoint's folder" in text and "(default: voc)" in text


@pytest.mark.parametrize("flags, message", [
    (["--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["-b", "0"], "--batch-size must be at least 1, got 0"),
    (["--print-freq", "0"], "--print-freq must be at least 1, got 0"),
    (["--eval-batch-size", "0"], "--eval-batch-size must be at least 1, got 0"),
    (["--limit-batches", "0"], "--limit-batches must be at least 1, got 0"),
    (["--synthetic-size", "0"], "--synthetic-size must be at least 1, got 0"),
    (["--lr", "0"], "--lr must be positive, got 0.0"),
    (["--lr", "nan"], "--lr must be positive, got nan"),
    (["-j", "-1"], "--workers must be >= 0, got -1"),
    (["--compile-mode", "reduce-overhead"], "--compile-mode reduce-overhead needs --compile"),
])
def test_impossible_values_are_refused_with_their_flag(flags, message):
    with pytest.raises(UserError) as info:
        cli.check_args(parser().parse_args(flags))
    assert str(info.value) == message


def test_smallest_allowed_values_pass(tmp_path):
    cli.check_args(parser().parse_args(["--epochs", "1", "-b", "1", "--print-freq", "1", "--eval-batch-size", "1",
                                        "--limit-batches", "1", "--synthetic-size", "1", "--lr", "1e-9", "-j", "0"]))
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match=r"^--data-path .*file is a file, not a folder$"):
        cli.check_args(parser().parse_args(["--data-path", str(tmp_path / "file")]))
    cli.check_args(parser().parse_args(["--data-path", str(tmp_path / "missing")]))  # created by --download later


@pytest.mark.parametrize("spec, message", [
    ("gpu0", "--device 'gpu0' is not a device (use auto, cpu, cuda or cuda:N)"),
    ("meta", "--device 'meta' is not supported (use auto, cpu, cuda or cuda:N)"),
])
def test_device_strings(spec, message):
    with pytest.raises(UserError) as info:
        cli.resolve_device(spec)
    assert str(info.value) == message
    assert cli.resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA errors")
def test_cuda_without_cuda_names_the_request():
    for spec in ("cuda", "cuda:1"):
        with pytest.raises(UserError) as info:
            cli.resolve_device(spec)
        assert str(info.value) == f"--device {spec} requested but CUDA is not available on this machine"


def test_cuda_index_beyond_the_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert cli.resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(UserError, match=r"^--device cuda:2: only 2 CUDA device\(s\) present$"):
        cli.resolve_device("cuda:2")
    assert cli.resolve_device("auto") == torch.device("cuda")


def test_setup_on_a_cpu_decides_full_precision_no_workers_and_seeds(tmp_path):
    args = parser().parse_args(["--device", "cpu", "--output-dir", str(tmp_path / "run"), "--seed", "7"])
    rt = runtime.setup(args)
    assert (rt.device, rt.rank, rt.world_size, rt.amp_dtype, rt.channels_last, rt.resume) == \
        (torch.device("cpu"), 0, 1, None, False, None)
    assert rt.is_main and not rt.distributed and args.workers == 0
    first = torch.rand(3)
    runtime.seed_everything(7)
    assert torch.equal(first, torch.rand(3))  # setup seeded torch from --seed
    assert not (tmp_path / "run").exists()  # nothing written


def test_setup_honours_explicit_choices_on_a_cpu(tmp_path):
    args = parser().parse_args(["--device", "cpu", "--output-dir", str(tmp_path), "--amp", "--channels-last", "-j",
                                "3"])
    rt = runtime.setup(args)
    assert rt.amp_dtype == torch.bfloat16 and rt.channels_last and args.workers == 3  # CPU autocast is bf16 only


def test_runtime_rank_properties():
    assert runtime.Runtime(torch.device("cpu"), rank=1, world_size=2).distributed
    assert not runtime.Runtime(torch.device("cpu"), rank=1, world_size=2).is_main
    assert runtime.Runtime(torch.device("cpu"), rank=0, world_size=2).is_main


def test_seed_everything_seeds_python_numpy_and_torch():
    import random

    import numpy as np

    runtime.seed_everything(3)
    draws = (random.random(), np.random.rand(), torch.rand(1).item())
    runtime.seed_everything(3)
    assert draws == (random.random(), np.random.rand(), torch.rand(1).item())
    runtime.seed_everything(4)
    assert draws[0] != random.random()
    runtime.seed_everything(2 ** 33 + 3)  # numpy takes 32 bits: the seed is reduced, not refused


def test_under_torchrun_a_bad_flag_is_one_line_and_exit_code_2(tmp_path):
    """2 CPU ranks (gloo): rank 0 prints the one `error:` line and exits 2 first (torchrun's root cause); rank 1 waits
    its grace period, and torchrun stops it."""
    import subprocess
    import sys

    from util import ROOT

    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           str(ROOT / "03_cifar_train" / "train.py"), "--data", "synthetic", "--epochs", "0",
                           "--output-dir", str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    lines = [line for line in done.stderr.splitlines() if "error: " in line]
    assert lines == ["error: --epochs must be at least 1, got 0"], done.stderr
    root_cause = done.stderr.split("Root Cause")[1]
    assert "rank      : 0" in root_cause and "exitcode  : 2" in root_cause
    assert not (tmp_path / "run").exists()


def test_a_rank_other_than_0_prints_its_own_error_after_the_grace_period(monkeypatch, capsys):
    from common import errors

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(errors, "RANK_GRACE_S", 0)
    for exc, code, line in [(UserError("bad shard"), 2, "rank 1: error: bad shard\n"),
                            (FloatingPointError("loss is nan"), 1, "\nrank 1: error: loss is nan\n")]:
        def fail(exc=exc):
            raise exc

        with pytest.raises(SystemExit) as exited:
            errors.cli_main(fail)
        assert exited.value.code == code and capsys.readouterr().err == line


def test_a_folder_that_cannot_be_created_is_named_with_the_ancestor_that_refuses(tmp_path, monkeypatch):
    """`os.access` decides (as root every folder is writable, so the refusal is simulated): the message names the flag,
    the folder asked for and the existing ancestor that would not take a new folder; nothing is created."""
    import os

    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path)
    with pytest.raises(UserError) as info:
        cli.ensure_writable_dir(tmp_path / "a" / "b", "--feature-cache")
    assert str(info.value) == f"--feature-cache {tmp_path / 'a' / 'b'} is not writable (cannot create folders in {tmp_path})"
    assert not (tmp_path / "a").exists()
    (tmp_path / "c").mkdir()
    cli.ensure_writable_dir(tmp_path / "c")  # an existing folder is proved by writing into it, not by os.access


def test_first_line_quotes_a_librarys_reason_in_one_line_even_when_it_is_empty():
    from common.errors import first_line

    assert first_line(RuntimeError("Constraints violated (height)!\n  - details\n")) == "Constraints violated (height)!"
    assert first_line(RuntimeError("\n\n  mat1 and mat2 shapes cannot be multiplied  \nmore")) == \
        "mat1 and mat2 shapes cannot be multiplied"
    assert first_line(RuntimeError()) == "RuntimeError" and first_line(OSError("  \n")) == "OSError"
