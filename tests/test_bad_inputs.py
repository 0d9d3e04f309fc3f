"""Bad input in every folder that reads it: one `UserError` naming the file or flag, raised before anything is trained or
written (issue 12). In-process `main()` calls, so each case costs milliseconds, not an interpreter start."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from common.errors import UserError
from util import load

IMAGEFOLDER_TRAINERS = ["02_tensorboard_transforms", "05_mobilenet", "08_transfer", "09_googlenet"]
NEEDS = {"08_transfer": ["--method", "scratch"]}  # what a folder needs beyond the data to get as far as reading it


def write_folder_set(root: Path, classes: tuple[str, ...] = ("ants", "bees"), per_class: int = 2) -> Path:
    for split in ("train", "val"):
        for c, name in enumerate(classes):
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (40, 36), (60 * c, 10 * i, 90)).save(root / split / name / f"{i}.jpg")
    return root


def truncated_jpeg(path: Path) -> Path:
    Image.effect_noise((64, 64), 40).convert("RGB").save(path, quality=90)
    path.write_bytes(path.read_bytes()[:600])
    return path


def run(folder: str, data: Path, out: Path, *extra: str):
    return load(folder, "train").main(["--data", "imagefolder", "--data-path", str(data), "--output-dir", str(out),
                                       "--device", "cpu", *NEEDS.get(folder, []), *extra])


@pytest.mark.parametrize("folder", IMAGEFOLDER_TRAINERS)
@pytest.mark.parametrize("bad", ["truncated", "text", "empty"])
def test_a_bad_image_in_an_imagefolder_set_is_named_before_training(folder, bad, tmp_path):
    data = write_folder_set(tmp_path / "data")
    path = data / "val" / "bees" / "x.jpg"
    {"truncated": truncated_jpeg, "text": lambda p: p.write_text("<html>"), "empty": lambda p: p.write_bytes(b"")}[bad](path)
    with pytest.raises(UserError, match=rf"^{path} is not a readable image \(.+\); remove it or pass --skip-bad$"):
        run(folder, data, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("folder", IMAGEFOLDER_TRAINERS)
def test_one_class_is_refused(folder, tmp_path):
    data = write_folder_set(tmp_path / "data", classes=("ants",))
    with pytest.raises(UserError, match=r"classification needs at least 2 class folders, found \['ants'\]"):
        run(folder, data, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_skip_bad_trains_on_the_readable_images(tmp_path, capsys):
    data = write_folder_set(tmp_path / "data")
    bad = truncated_jpeg(data / "train" / "ants" / "broken.jpg")
    result = run("05_mobilenet", data, tmp_path / "out", "--skip-bad", "--epochs", "1", "-b", "2", "--image-size", "32",
                 "--width-mult", "0.25")
    assert (tmp_path / "out" / "last.pth").is_file() and result is not None
    err = capsys.readouterr().err
    assert err.count("warning: skipping") == 1 and f"skipping {bad}: not a readable image" in err


SEG_TRAINERS = ["04_dilated_conv", "06_fcn", "07_deeplab"]


@pytest.fixture()
def voc(tmp_path) -> Path:
    from common.synthetic import SyntheticSegmentation, write_voc

    return write_voc(tmp_path / "data", {"train": SyntheticSegmentation(3, image_size=24, split="train"),
                                         "val": SyntheticSegmentation(2, image_size=24, split="val")})


def run_seg(folder: str, data: Path, out: Path, *extra: str):
    return load(folder, "train").main(["--data", "voc", "--data-path", str(data), "--output-dir", str(out),
                                       "--device", "cpu", *extra])


@pytest.mark.parametrize("folder", SEG_TRAINERS)
def test_a_truncated_voc_jpeg_is_named_before_training(folder, voc, tmp_path):
    """The mask check alone read only the JPEG's header: a truncated body crashed mid-epoch."""
    path = truncated_jpeg(voc / "JPEGImages" / "val_00001.jpg")
    with pytest.raises(UserError, match=rf"^{path} is not a readable image \(.+\); remove it or pass --skip-bad$"):
        run_seg(folder, voc.parents[1], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_voc_split_files_blank_lines_empty_splits_and_skip_bad(voc, tmp_path, capsys):
    from common import segmentation

    split = voc / "ImageSets" / "Segmentation" / "train.txt"
    split.write_text("\ntrain_00000\n\n  \ntrain_00001\ntrain_00002\n\n")  # blank lines: no "JPEGImages/.jpg" missing
    assert len(segmentation.VOCSegmentationFiles(voc.parents[1], "train", None, num_classes=21)) == 3
    bad = truncated_jpeg(voc / "JPEGImages" / "train_00001.jpg")
    (voc / "SegmentationClass" / "train_00002.png").write_text("not a png")
    kept = segmentation.VOCSegmentationFiles(voc.parents[1], "train", None, num_classes=21, skip_bad=True)
    assert kept.images == [voc / "JPEGImages" / "train_00000.jpg"]
    assert kept.masks == [voc / "SegmentationClass" / "train_00000.png"]
    err = capsys.readouterr().err
    assert f"skipping {bad}: not a readable image" in err and "train_00002.jpg: its mask is not readable" in err
    split.write_text("train_00000\ntrain_00002\n")
    with pytest.raises(UserError, match=r"train_00002\.png is not a readable mask .*; remove the pair from the split "
                                        r"file or pass --skip-bad$"):
        segmentation.VOCSegmentationFiles(voc.parents[1], "train", None, num_classes=21)
    split.write_text("\n\n")
    with pytest.raises(UserError, match=r"ImageSets/Segmentation/train\.txt lists no images$"):
        run_seg("06_fcn", voc.parents[1], tmp_path / "out")  # was ValueError: need total_steps >= 1


def test_resume_refuses_a_changed_architecture_and_names_the_flag(tmp_path):
    """04 `--model gridding` resumed from an hdc run has the same tensor shapes: it used to load and save hdc weights
    labelled gridding. --lr may change on a resume and is applied."""
    train = load("04_dilated_conv", "train")
    fast = ["--width", "8", "--groups", "1", "--synthetic-size", "8", "-b", "4", "--limit-batches", "1",
            "--output-dir", str(tmp_path / "run")]
    train.main([*fast, "--epochs", "1"])
    last = tmp_path / "run" / "last.pth"
    with pytest.raises(UserError, match=rf"^--resume {last} is another run's checkpoint \(--model gridding \(was "
                                        r"hdc\)\): a resumed run keeps the model"):
        train.main([*fast, "--epochs", "2", "--resume", str(last), "--model", "gridding"])
    assert torch.load(last, weights_only=True)["epoch"] == 0
    train.main([*fast, "--epochs", "2", "--resume", str(last), "--lr", "0.003"])
    resumed = torch.load(last, weights_only=True)
    assert resumed["epoch"] == 1 and resumed["args"]["lr"] == 0.003
    assert resumed["optimizer"]["param_groups"][0]["initial_lr"] == 0.003  # the flag's LR ran, not the checkpoint's
