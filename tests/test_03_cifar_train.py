"""03_cifar_train end to end: the loop, resume, checkpoints, DDP, predict.py, portability and every bad-input error."""
import os
import shutil
import subprocess
import sys

import pytest
import torch
from PIL import Image

from common.errors import UserError
from util import ROOT, load

FAST = ["--data", "synthetic", "--synthetic-size", "256", "-b", "32", "--print-freq", "4"]


@pytest.fixture(scope="module")
def train():
    return load("03_cifar_train", "train")


def run_script(*args, cwd=ROOT, env=None):
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=env)


def test_notes_shape_check():
    model = load("03_cifar_train").Tudui()
    assert model(torch.ones((64, 3, 32, 32))).shape == (64, 10)
    names = [n for n, _ in model.named_children()]
    assert names == ["conv1", "maxpool1", "conv2", "maxpool2", "conv3", "maxpool3", "flatten", "Linear1", "Linear2"]


def test_training_learns_and_logs_the_notes_tags(train, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    summary = train.main([*FAST, "--synthetic-size", "1024", "--epochs", "3", "--lr", "0.1",
                          "--output-dir", str(tmp_path)])
    assert summary["metrics"]["accuracy"] > 0.25  # 10 classes: chance is 0.1
    acc = EventAccumulator(str(tmp_path)).Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train_loss", "test_loss", "test_accuracy", "lr"} <= tags
    assert [e.step for e in acc.Scalars("test_accuracy")] == [0, 1, 2]
    ckpt = torch.load(tmp_path / "best.pth", weights_only=True)
    assert ckpt["model_name"] == "tudui" and ckpt["class_names"][0] == "disk" and ckpt["epoch"] in (0, 1, 2)
    assert ckpt["args"]["output_dir"] == str(tmp_path) and ckpt["preprocess"]["resize"] == [32, 32]
    assert ckpt["args"]["workers"] == 0  # -j defaults to 0 on a CPU: workers would compete with the model


@pytest.mark.parametrize("loader", ["tensor", "dataloader"])
def test_resume_after_epoch_1_matches_an_uninterrupted_run(train, tmp_path, loader):
    common = [*FAST, "--loader", loader, "--augment"]
    train.main([*common, "--epochs", "2", "--output-dir", str(tmp_path / "full")])
    train.main([*common, "--epochs", "1", "--output-dir", str(tmp_path / "part")])
    train.main([*common, "--epochs", "2", "--output-dir", str(tmp_path / "part"),
                "--resume", str(tmp_path / "part" / "last.pth")])
    full = torch.load(tmp_path / "full" / "last.pth", weights_only=True)
    resumed = torch.load(tmp_path / "part" / "last.pth", weights_only=True)
    assert resumed["epoch"] == full["epoch"] == 1
    for key, value in full["model"].items():
        assert torch.equal(value, resumed["model"][key]), key


def test_resume_of_a_finished_run_asks_for_more_epochs(train, tmp_path):
    train.main([*FAST, "--epochs", "1", "--limit-batches", "1", "--output-dir", str(tmp_path)])
    before = (tmp_path / "last.pth").read_bytes()
    with pytest.raises(UserError, match="already finished epoch 1 of 1; pass a larger --epochs"):
        train.main([*FAST, "--epochs", "1", "--output-dir", str(tmp_path), "--resume", str(tmp_path / "last.pth")])
    assert (tmp_path / "last.pth").read_bytes() == before


def test_cli_train_then_predict(tmp_path, capsys):
    out = tmp_path / "run"
    result = run_script("03_cifar_train/train.py", *FAST, "--epochs", "1", "--limit-batches", "2", "--output-dir", out,
                        "--save-full-model")
    assert result.returncode == 0, result.stderr
    assert "epoch 1/1" in result.stdout
    assert not (out / ".lock").exists()  # the one-run-per-folder lock goes with the process
    good = tmp_path / "cat.png"
    Image.new("RGB", (50, 40), (200, 30, 30)).save(good)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    predict = load("03_cifar_train", "predict")
    capsys.readouterr()
    assert predict.main([str(out / "last.pth"), str(good), str(broken), "--topk", "2"]) == 1
    printed = capsys.readouterr()
    line = printed.out.strip()
    assert line.startswith(f"{good}: ") and line.count("(") == 2, line
    assert f"{broken}: error: cannot read image" in printed.err
    full_model = out / "tudui_method1.pth"
    with pytest.raises(UserError, match="pickled Python objects"):
        predict.main([str(full_model), str(good)])
    allowed = run_script("03_cifar_train/predict.py", full_model, good, "--unsafe-pickle")  # unpickles 03's own class
    assert allowed.returncode == 0 and allowed.stdout.startswith(f"{good}: "), allowed.stderr


def test_two_nodes_with_torchrun_train_as_one_run(tmp_path):
    """DDP, multi-node as the README shows it: two torchrun agents (one CPU process each, gloo) meet at a c10d
    rendezvous on 127.0.0.1 and become one job of two ranks; global rank 0 alone prints and writes, and the accuracy
    reduced across the ranks equals one process scoring the whole test set. (torchrun --standalone's 2-rank start is
    the same code path; its error handling is tests/test_cli_runtime.py's.)"""
    import socket

    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "multinode"
    agents = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1", "--rdzv-backend=c10d",
         f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=two-nodes", "03_cifar_train/train.py", *FAST,
         "--synthetic-size", "200", "--epochs", "1", "--device", "cpu", "--output-dir", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in (0, 1)]
    results = [agent.communicate(timeout=300) for agent in agents]
    assert [a.returncode for a in agents] == [0, 0], results[0][1][-2000:] + results[1][1][-2000:]
    # the rendezvous decides which node holds global rank 0: that one alone reports
    assert sorted(stdout.count("epoch 1/1") for stdout, _ in results) == [0, 1]
    assert len(list(out.glob("events.out.tfevents.*"))) == 1
    ckpt = torch.load(out / "last.pth", weights_only=True)
    model = load("03_cifar_train").build_model("tudui")
    model.load_state_dict(ckpt["model"])
    from common.synthetic import SyntheticShapes

    test = SyntheticShapes(50, split="test")  # each node scored half; the reduced number is all 50 images'
    x = (torch.from_numpy(test.data).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    with torch.no_grad():
        acc = (model(x).argmax(1) == torch.tensor(test.targets)).float().mean().item()
    assert ckpt["metrics"]["accuracy"] == pytest.approx(acc)


def test_copied_folder_trains_in_another_project(tmp_path):
    shutil.copytree(ROOT / "03_cifar_train", tmp_path / "03_cifar_train")
    shutil.copytree(ROOT / "common", tmp_path / "common", ignore=shutil.ignore_patterns("__pycache__"))
    # under `mutmut run` the copies carry mutmut's trampolines, which look for its config in the working directory: the
    # stats pass ("stats") would fail outside mutants/, so the copy runs with no mutant switched on
    env = {**os.environ, "MUTANT_UNDER_TEST": ""} if "MUTANT_UNDER_TEST" in os.environ else None
    result = run_script("03_cifar_train/train.py", *FAST, "--epochs", "1", "--limit-batches", "2", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "runs" / "03_cifar_train" / "last.pth").is_file()


def _pickled(path):
    torch.save(torch.nn.Linear(2, 2), path)


def _corrupt(path):
    path.write_bytes(b"\x00garbage")


def _foreign(path):
    torch.save({"weights": torch.ones(3)}, path)


def _other_model(path):
    torch.save({"conv.weight": torch.ones(3, 3)}, path)


@pytest.mark.parametrize("flag, make, message", [
    ("--resume", None, "no such file"),
    ("--resume", _corrupt, "is not a PyTorch file"),
    ("--resume", _foreign, "not a checkpoint of this repo"),
    ("--resume", _pickled, "pickled Python objects"),
    ("--weights", _pickled, "pickled Python objects"),
    ("--weights", _corrupt, "is not a PyTorch file"),
    ("--weights", _other_model, "no parameter of the model matches"),
])
def test_bad_checkpoint_files_fail_before_anything_is_written(train, tmp_path, flag, make, message):
    out = tmp_path / "out"
    out.mkdir()
    (out / "last.pth").write_bytes(b"previous run")
    path = tmp_path / "given.pth"
    if make is not None:
        make(path)
    with pytest.raises(UserError, match=message):
        train.main([*FAST, "--epochs", "1", "--output-dir", str(out), "--overwrite", flag, str(path)])
    assert sorted(p.name for p in out.iterdir()) == ["last.pth"]  # --overwrite removes it only once this run writes
    assert (out / "last.pth").read_bytes() == b"previous run"


@pytest.mark.parametrize("args, message", [
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["-b", "-1"], "--batch-size must be at least 1"),
    (["--lr", "0"], "--lr must be positive"),
    (["--data", "cifar10"], "CIFAR-10 not found .*--download"),
])
def test_bad_arguments(train, tmp_path, args, message):
    with pytest.raises(UserError, match=message):
        train.main([*FAST, "--data-path", str(tmp_path / "empty"), "--output-dir", str(tmp_path / "o"), *args])


def test_data_path_that_is_a_file(train, tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(UserError, match="is a file"):
        train.main([*FAST, "--data-path", str(path), "--output-dir", str(tmp_path / "o")])


def test_unwritable_output_dir(train, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(UserError, match="not writable"):
        train.main([*FAST, "--output-dir", str(blocker / "run")])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_request_exits_2_with_one_line(train, tmp_path, capsys):
    from common.errors import cli_main

    with pytest.raises(SystemExit) as info:
        cli_main(lambda: train.main([*FAST, "--device", "cuda", "--output-dir", str(tmp_path / "run")]))
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and err.startswith("error: --device cuda")
    assert not any(tmp_path.iterdir())


def test_notes_layers_forward_order_and_shapes():
    """The notes' Tudui: Conv2d(3,32,5,1,2), MaxPool2d(2), Conv2d(32,32,5,1,2), MaxPool2d(2), Conv2d(32,64,5,1,2),
    MaxPool2d(2), Flatten, Linear(1024,64), Linear(64,10), run in that order with the shapes of model.py's comments."""
    m = load("03_cifar_train")
    model = m.Tudui()
    convs = {n: (c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding, c.bias is not None)
             for n, c in model.named_children() if isinstance(c, torch.nn.Conv2d)}
    assert convs == {"conv1": (3, 32, (5, 5), (1, 1), (2, 2), True), "conv2": (32, 32, (5, 5), (1, 1), (2, 2), True),
                     "conv3": (32, 64, (5, 5), (1, 1), (2, 2), True)}
    assert all((p.kernel_size, p.stride) == (2, 2) for n, p in model.named_children() if n.startswith("maxpool"))
    assert [(l.in_features, l.out_features) for l in (model.Linear1, model.Linear2)] == [(1024, 64), (64, 10)]
    calls = []
    for name, layer in model.named_children():
        layer.register_forward_hook(lambda mod, i, o, name=name: calls.append((name, tuple(o.shape[1:]))))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        expected = x
        for layer in model.children():
            expected = layer(expected)
    assert calls[:9] == [("conv1", (32, 32, 32)), ("maxpool1", (32, 16, 16)), ("conv2", (32, 16, 16)),
                         ("maxpool2", (32, 8, 8)), ("conv3", (64, 8, 8)), ("maxpool3", (64, 4, 4)), ("flatten", (1024,)),
                         ("Linear1", (64,)), ("Linear2", (10,))]
    assert torch.equal(out, expected)
    assert m.build_model("tudui").Linear2.out_features == 10 and m.build_model("tudui", 4).Linear2.out_features == 4
    with pytest.raises(ValueError, match=r"^unknown model 'Tom'; choose from \('tudui',\)$"):
        m.build_model("Tom")


def test_weights_report_is_saved_beside_the_run_but_not_by_test_only(train, tmp_path):
    """--weights in every folder (common.weights.load_weights_arg): the load report goes into the run's folder as
    weights_report.json; --test-only, which may evaluate inside another run's folder, leaves that folder's report alone."""
    import json

    first = tmp_path / "first"
    train.main([*FAST, "--epochs", "1", "--limit-batches", "1", "--output-dir", str(first)])
    second = tmp_path / "second"
    train.main([*FAST, "--epochs", "1", "--limit-batches", "1", "--weights", str(first / "last.pth"),
                "--output-dir", str(second)])
    report = json.loads((second / "weights_report.json").read_text())
    assert report["source"] == str(first / "last.pth") and report["model"] == "tudui"
    assert len(report["loaded"]) == 10 and not report["missing"]  # Tudui's 5 weights and 5 biases
    before = (second / "weights_report.json").read_text()
    train.main([*FAST, "--test-only", "--weights", str(second / "last.pth"), "--output-dir", str(second)])
    assert (second / "weights_report.json").read_text() == before and (second / "eval.json").is_file()
    assert not (first / "weights_report.json").exists()
