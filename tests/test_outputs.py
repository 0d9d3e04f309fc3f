"""What a run writes, and when: checkpoint permissions, no folder before the first file, nothing left by a failed
download, and a second run into the same --output-dir (refused, --resume, --overwrite). Issue 11, cases 6, 8, 9, 11."""
import os
import urllib.error
from pathlib import Path

import pytest
from PIL import Image
import torch
import torchvision

from common import checkpoint, classification, runtime
from common.errors import UserError
from common.files import removed_on_failure
from util import load

FAST = ["--data", "synthetic", "--synthetic-size", "64", "-b", "32", "--epochs", "1", "--print-freq", "1"]


@pytest.fixture
def umask():
    """Set the process umask for one test, and put the old one back."""
    saved = os.umask(0o022)
    yield os.umask
    os.umask(saved)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_checkpoints_get_the_mode_of_a_normal_file(tmp_path, umask, mask, mode):
    umask(mask)
    checkpoint.save_checkpoint({"w": torch.ones(1)}, tmp_path / "new" / "last.pth")
    assert (tmp_path / "new" / "last.pth").stat().st_mode & 0o777 == mode  # mkstemp alone gives 0600


def test_train_writes_checkpoints_a_teammate_can_read(tmp_path, umask):
    umask(0o022)
    load("03_cifar_train", "train").main([*FAST, "--limit-batches", "1", "--output-dir", str(tmp_path / "run")])
    for name in ("last.pth", "best.pth"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("folder, args", [
    ("03_cifar_train", ["--data", "cifar10"]),
    ("05_mobilenet", ["--data", "imagefolder"]),
    ("06_fcn", ["--data", "voc", "--backbone", "light"]),
    ("08_transfer", ["--data", "imagefolder", "--method", "scratch"]),
])
def test_a_failed_start_creates_no_output_folder(tmp_path, folder, args):
    out = tmp_path / "runs" / "new"
    with pytest.raises(UserError):
        load(folder, "train").main([*args, "--data-path", str(tmp_path / "no_data"), "--output-dir", str(out)])
    assert not (tmp_path / "runs").exists() and not (tmp_path / "no_data").exists()


def test_output_dir_checks_do_not_create_it(tmp_path):
    from common import cli

    cli.ensure_writable_dir(tmp_path / "a" / "b")
    assert not (tmp_path / "a").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is not writable .*file is a file"):
        cli.ensure_writable_dir(tmp_path / "file" / "run")
    os.chmod(tmp_path, 0o500)
    try:
        if not os.access(tmp_path, os.W_OK):  # root may write anyway
            with pytest.raises(UserError, match="cannot create folders in"):
                cli.ensure_writable_dir(tmp_path / "run")
    finally:
        os.chmod(tmp_path, 0o700)


def offline_download(url, download_root, **kwargs):
    """What an interrupted download leaves: the folder and a partial archive, then the network error."""
    Path(download_root).mkdir(parents=True, exist_ok=True)
    (Path(download_root) / "hymenoptera_data.zip").write_bytes(b"PK\x03\x04 half")
    raise urllib.error.URLError("offline")


def test_a_failed_download_leaves_no_empty_data_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", offline_download)
    with pytest.raises(UserError, match="could not download"):
        classification.fetch_hymenoptera(tmp_path / "data" / "sets", download=True)
    assert not (tmp_path / "data").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(UserError, match="could not download"):
        classification.fetch_hymenoptera(tmp_path / "mine", download=True)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]  # only the partial archive went


def test_removed_on_failure_keeps_what_succeeds(tmp_path):
    with removed_on_failure(tmp_path / "new"):
        (tmp_path / "new").mkdir()
        (tmp_path / "new" / "x").write_text("done")
    assert (tmp_path / "new" / "x").read_text() == "done"
    with pytest.raises(KeyboardInterrupt):
        with removed_on_failure(tmp_path / "new"):
            (tmp_path / "new" / "sub").mkdir()
            (tmp_path / "new" / "y").write_text("partial")
            raise KeyboardInterrupt
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["x"]


def fake_cifar(root: Path, corrupt: str | None = None, missing: str | None = None) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta"):
        if name != missing:
            (folder / name).write_bytes(b"x")
    return folder


def test_damaged_cifar10_names_the_file_not_a_missing_set(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tv_utils

    good = {}

    def integrity(path, md5=None):  # every fake file passes but the one that is "corrupt"
        return Path(path).name != good["corrupt"]

    monkeypatch.setattr(tv_utils, "check_integrity", integrity)
    good["corrupt"] = "data_batch_3"
    fake_cifar(tmp_path / "a")
    with pytest.raises(UserError, match=r"data_batch_3 is corrupt or incomplete.*delete .*--download"):
        classification.load_cifar10(tmp_path / "a", download=False)
    good["corrupt"] = None
    fake_cifar(tmp_path / "b", missing="test_batch")
    with pytest.raises(UserError, match=r"cifar-10-batches-py/test_batch is missing"):
        classification.load_cifar10(tmp_path / "b", download=False)
    with pytest.raises(UserError, match="CIFAR-10 not found under .*add --download"):
        classification.load_cifar10(tmp_path / "empty", download=False)
    assert classification.cifar10_problem(tmp_path / "empty") is None


def events(folder: Path) -> list[Path]:
    return sorted(folder.glob("events.out.tfevents.*"))


def test_a_second_run_into_the_same_folder_is_refused_then_resumed_or_overwritten(tmp_path):
    train = load("03_cifar_train", "train")
    out = tmp_path / "run"
    train.main([*FAST, "--limit-batches", "1", "--output-dir", str(out)])
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(UserError, match=r"already holds a run \(best.pth\); continue it with --resume .*last.pth, "
                                        r"replace it with --overwrite"):
        train.main([*FAST, "--limit-batches", "1", "--output-dir", str(out)])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first  # refused before writing anything
    other = tmp_path / "other"
    train.main([*FAST, "--limit-batches", "1", "--output-dir", str(other)])
    with pytest.raises(UserError, match="already holds a run"):  # someone else's checkpoint into this run's folder
        train.main([*FAST, "--epochs", "2", "--output-dir", str(out), "--resume", str(other / "last.pth")])
    train.main([*FAST, "--epochs", "2", "--limit-batches", "1", "--output-dir", str(out),
                "--resume", str(out / "last.pth")])
    assert len(events(out)) == 2 and torch.load(out / "last.pth", weights_only=True)["epoch"] == 1
    train.main([*FAST, "--limit-batches", "1", "--output-dir", str(out), "--overwrite", "--seed", "5"])
    assert len(events(out)) == 1 and events(out)[0].name not in first  # one run's curves, not two stacked
    for name in ("last.pth", "best.pth"):
        ckpt = torch.load(out / name, weights_only=True)
        assert ckpt["args"]["seed"] == 5 and ckpt["epoch"] == 0


def test_previous_run_lists_only_run_files(tmp_path):
    (tmp_path / "feature_cache").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    assert runtime.previous_run(tmp_path) == [] and runtime.previous_run(tmp_path / "none") == []
    (tmp_path / "events.out.tfevents.1.host").write_bytes(b"")
    (tmp_path / "best.pth").write_bytes(b"")
    assert [p.name for p in runtime.previous_run(tmp_path)] == ["best.pth", "events.out.tfevents.1.host"]


def test_one_run_per_folder_a_live_lock_refuses_even_overwrite_and_a_stale_one_is_taken_over(tmp_path):
    """Two runs into one folder raced for best.pth (the better 06 result was lost): the folder is locked while a run
    writes there. A lock whose process is gone (killed) is stale and taken over; the lock goes when the run exits."""
    import socket
    import subprocess
    import sys

    train = load("03_cifar_train", "train")
    out = tmp_path / "run"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / runtime.LOCK).write_text(f"{sleeper.pid} {socket.gethostname()}\n")
        for extra in ([], ["--overwrite"]):
            with pytest.raises(UserError) as info:
                train.main([*FAST, "--limit-batches", "1", "--output-dir", str(out), *extra])
            assert str(info.value) == (f"--output-dir {out} is in use by another run (PID {sleeper.pid}); wait for it "
                                       f"to finish or choose another --output-dir (delete {out / runtime.LOCK} if no "
                                       "run is using it)")
        assert sorted(p.name for p in out.iterdir()) == [runtime.LOCK]
    finally:
        sleeper.kill()
        sleeper.wait()
    (out / ".last.pth.k3j_x9a2.tmp").write_bytes(b"half a checkpoint")  # left by a SIGKILL mid-save
    (out / "notes.tmp").write_text("mine")
    train.main([*FAST, "--limit-batches", "1", "--output-dir", str(out)])  # the sleeper is dead: its lock is stale
    assert (out / runtime.LOCK).read_text() == f"{os.getpid()} {socket.gethostname()}\n"
    assert not (out / ".last.pth.k3j_x9a2.tmp").exists() and (out / "notes.tmp").exists()
    assert runtime.lock_holder(out) is None  # this process's own lock holds nobody else back
    (out / runtime.LOCK).write_text(f"1 {socket.gethostname()}-elsewhere\n")  # another machine on a shared disk
    assert runtime.lock_holder(out) == f"PID 1 on {socket.gethostname()}-elsewhere"
    mine = f"{os.getpid()} {socket.gethostname()}\n"
    runtime._release(out / runtime.LOCK, mine)  # releasing someone else's lock leaves it
    assert (out / runtime.LOCK).exists()
    (out / runtime.LOCK).write_text(mine)
    runtime._release(out / runtime.LOCK, mine)
    assert not (out / runtime.LOCK).exists()



def test_test_only_evaluates_a_checkpoint_and_writes_eval_json_only(tmp_path, capsys):
    """torchvision's --test-only: the --resume checkpoint's weights on the val set; metrics and eval.json; last.pth,
    best.pth and the event files are untouched."""
    import json

    train = load("03_cifar_train", "train")
    out = tmp_path / "run"
    trained = train.main([*FAST, "--limit-batches", "2", "--output-dir", str(out)])
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".lock"}
    capsys.readouterr()
    result = train.main([*FAST, "--test-only", "--resume", str(out / "last.pth"), "--limit-batches", "2"])
    assert result["metrics"]["accuracy"] == pytest.approx(trained["metrics"]["accuracy"])  # the same weights, same data
    written = (".lock", "eval.json", "confusion_matrix.png")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name not in written} == before
    report = json.loads((out / "eval.json").read_text())
    assert report["metrics"]["accuracy"] == pytest.approx(trained["metrics"]["accuracy"])
    assert report["checkpoint"] == str(out / "last.pth") and report["data"] == "synthetic"
    confusion = report["confusion"]  # rows labels, columns predictions: the diagonal over the total is the accuracy
    assert len(confusion) == 10 and sum(confusion[i][i] for i in range(10)) / sum(map(sum, confusion)) == \
        pytest.approx(report["metrics"]["accuracy"])
    assert list(report["per_class"]["disk"]) == ["recall"]
    with Image.open(out / "confusion_matrix.png") as image:
        assert image.format == "PNG"
    printed = capsys.readouterr().out
    assert "test_accuracy" in printed and "| class | recall |" in printed and "| disk | " in printed
    with pytest.raises(UserError, match=r"^--test-only evaluates a trained model: give --resume CHECKPOINT or --weights$"):
        train.main([*FAST, "--test-only", "--output-dir", str(tmp_path / "x")])


def test_test_only_prints_and_saves_the_per_class_table_for_segmentation(tmp_path, capsys):
    import json

    train = load("06_fcn", "train")
    fast = ["--data", "synthetic", "--backbone", "light", "--synthetic-size", "8", "-b", "4", "--epochs", "1",
            "--image-size", "32"]
    train.main([*fast, "--output-dir", str(tmp_path / "run")])
    capsys.readouterr()
    result = train.main([*fast, "--test-only", "--weights", str(tmp_path / "run" / "best.pth"),
                         "--output-dir", str(tmp_path / "eval")])
    out = capsys.readouterr().out
    assert "| class | iou | boundary_iou_per_class |" in out and "| bar | " in out
    report = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert list(report["per_class"]) == ["background", "disk", "square", "triangle", "ring", "bar"]
    bar = [float("nan") if v is None else v for v in report["per_class"]["bar"].values()]
    assert "| bar | " + " | ".join(f"{v:.3f}" for v in bar) + " |" in out.splitlines()  # the printed row, exactly
    assert report["metrics"]["miou"] == pytest.approx(result["metrics"]["miou"])
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == ["eval.json"]  # no checkpoint, no events


def test_every_evaluation_logs_per_class_numbers_and_the_confusion_matrix(tmp_path, capsys):
    """Classification: `recall: <class> v, ...` printed and `test_recall/<class>` scalars each epoch, the confusion
    matrix as a TensorBoard image; segmentation: the per-class IoU line and `test_iou/<class>`. The matrix is not stored
    in the checkpoint (it grows with the square of the classes)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "cls"
    load("03_cifar_train", "train").main([*FAST, "--limit-batches", "2", "--epochs", "2", "--output-dir", str(out)])
    printed = capsys.readouterr().out
    assert printed.count("  recall: disk ") == 2 and ", frame " in printed
    acc = EventAccumulator(str(out), size_guidance={"images": 0}).Reload()
    assert [e.step for e in acc.Scalars("test_recall/frame")] == [0, 1]
    assert [e.step for e in acc.Images("confusion_matrix")] == [0, 1]
    ckpt = torch.load(out / "last.pth", weights_only=True)
    assert "confusion" not in ckpt["metrics"] and len(ckpt["metrics"]["recall"]) == 10
    seg = tmp_path / "seg"
    load("06_fcn", "train").main(["--data", "synthetic", "--backbone", "light", "--synthetic-size", "8", "-b", "4",
                                  "--epochs", "1", "--image-size", "32", "--output-dir", str(seg)])
    assert "  iou: background " in capsys.readouterr().out
    acc = EventAccumulator(str(seg)).Reload()
    assert "test_iou/bar" in acc.Tags()["scalars"] and "confusion_matrix" not in acc.Tags()["images"]


@pytest.mark.parametrize("classes, drawn", [(50, True), (51, False)])
def test_test_only_draws_the_confusion_matrix_up_to_max_classes(tmp_path, classes, drawn):
    """engine.MAX_CLASSES (50) classes still get confusion_matrix.png; one more and only eval.json keeps the matrix."""
    import torch
    from torch import nn

    from common import engine, metrics
    from common.runtime import Runtime
    from test_engine import make_args

    assert engine.MAX_CLASSES == 50
    args = make_args(tmp_path, "--test-only", "--weights", "w.pth")
    batches = [(torch.randn(4, 4), torch.randint(0, classes, (4,)))]
    engine.fit(nn.Linear(4, classes), nn.CrossEntropyLoss(), None, [], batches, args=args,
               rt=Runtime(device=torch.device("cpu")), metric=metrics.classification_metric(classes),
               meta=engine.Meta(model_name="linear", class_names=[f"c{i}" for i in range(classes)]))
    assert (args.output_dir / "confusion_matrix.png").is_file() == drawn and (args.output_dir / "eval.json").is_file()
