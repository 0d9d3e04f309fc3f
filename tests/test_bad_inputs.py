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
@pytest.mark.parametrize("bad", ["truncated", "text", "empty", "bomb"])
def test_a_bad_image_in_an_imagefolder_set_is_named_before_training(folder, bad, tmp_path):
    data = write_folder_set(tmp_path / "data")
    path = data / "val" / "bees" / ("x.png" if bad == "bomb" else "x.jpg")
    {"truncated": truncated_jpeg, "text": lambda p: p.write_text("<html>"), "empty": lambda p: p.write_bytes(b""),
     "bomb": lambda p: Image.new("1", (14000, 14000)).save(p)}[bad](path)  # 196 MP in 24 kB
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


def fcn_checkpoint(path: Path) -> Path:
    model = load("06_fcn").build_model("fcn32s", num_classes=2, backbone="light")
    torch.save({"model": model.state_dict(), "model_name": "fcn32s", "model_kwargs": {"backbone": "light"},
                "class_names": ["background", "thing"], "preprocess": {}}, path)
    return path


@pytest.mark.parametrize("folder", ["04_dilated_conv", "06_fcn", "07_deeplab"])
def test_segmentation_predict_output_dir_under_a_file(folder, tmp_path):
    (tmp_path / "file").write_text("x")
    Image.new("RGB", (20, 20)).save(tmp_path / "a.png")
    with pytest.raises(UserError, match=rf"^--output-dir {tmp_path / 'file' / 'out'} is not writable \({tmp_path / 'file'} "
                                        r"is a file\)$"):
        load(folder, "predict").main([str(tmp_path / "no-checkpoint-needed.pth"), str(tmp_path / "a.png"),
                                      "--output-dir", str(tmp_path / "file" / "out")])  # refused before the checkpoint


def test_02_predict_logdir_under_a_file_and_a_sheet_that_is_a_folder(tmp_path):
    predict = load("02_tensorboard_transforms", "predict")
    Image.new("RGB", (40, 40)).save(tmp_path / "a.png")
    (tmp_path / "file").write_text("x")
    base = [str(tmp_path / "a.png"), "--crop-size", "16", "--crops", "1"]
    with pytest.raises(UserError, match=r"^--logdir \S+file/tb is not writable \(\S+file is a file\)$"):
        predict.main([*base, "--logdir", str(tmp_path / "file" / "tb")])
    with pytest.raises(UserError, match=rf"^--sheet {tmp_path} is a folder; give a .png file name$"):
        predict.main([*base, "--logdir", str(tmp_path / "tb"), "--sheet", str(tmp_path)])
    assert not (tmp_path / "tb").exists()


@pytest.mark.parametrize("folder, argv, message", [
    ("06_fcn", ["--weight-decay", "-1"], "--weight-decay must be >= 0, got -1.0"),
    ("08_transfer", ["--method", "scratch", "--momentum", "-0.1"], r"--momentum must be in \[0, 1\), got -0.1"),
    ("08_transfer", ["--method", "scratch", "--momentum", "1"], r"--momentum must be in \[0, 1\), got 1.0"),
    ("02_tensorboard_transforms", ["--image-size", "100000"], "--image-size must be between 8 and 1024, got 100000"),
    ("07_deeplab", ["-b", "0"], "--batch-size must be at least 1, got 0"),  # was "--batch-size 1 cannot train"
])
def test_impossible_flag_values(folder, argv, message, tmp_path):
    with pytest.raises(UserError, match=rf"^{message}$"):
        load(folder, "train").main([*argv, "--data", "synthetic", "--output-dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_08_feature_cache_that_is_a_file_is_refused_before_extraction(tmp_path):
    (tmp_path / "cache").write_text("x")
    with pytest.raises(UserError, match=r"^--feature-cache \S+cache is not writable \(\S+cache is a file\)$"):
        load("08_transfer", "train").main(["--method", "features", "--weights", str(tmp_path / "w.pth"),
                                           "--feature-cache", str(tmp_path / "cache"), "--output-dir",
                                           str(tmp_path / "out")])


def test_01_label_files_that_are_not_text_or_not_in_a_folder(tmp_path):
    dataset, make_labels = load("01_dataset", "dataset"), load("01_dataset", "make_labels")
    (tmp_path / "ants_image").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "ants_image" / "a.jpg")
    (tmp_path / "ants_label").mkdir()
    (tmp_path / "ants_label" / "a.txt").write_bytes("fourmis é".encode("latin-1"))
    for build in (lambda: dataset.LabelFileData(tmp_path, "ants_image", "ants_label"),
                  lambda: make_labels.make_labels(tmp_path, log=None)):
        with pytest.raises(UserError, match=r"ants_label/a.txt is not UTF-8 text \(byte 0xe9 at position 8\); save it "
                                            "as UTF-8$"):
            build()
    (tmp_path / "ants_label" / "a.txt").unlink()
    (tmp_path / "ants_label").rmdir()
    (tmp_path / "ants_label").write_text("not a folder")
    for build in (lambda: dataset.LabelFileData(tmp_path, "ants_image", "ants_label"),
                  lambda: make_labels.make_labels(tmp_path, log=None)):
        with pytest.raises(UserError, match=r"ants_label is a file, not a folder of <stem>.txt label files$"):
            build()


def test_02_refuses_a_finished_resume_before_writing_an_event_file(tmp_path):
    train = load("02_tensorboard_transforms", "train")
    fast = ["--data", "synthetic", "--synthetic-size", "16", "-b", "8", "--epochs", "1", "--output-dir",
            str(tmp_path / "run")]
    train.main(fast)
    events = sorted((tmp_path / "run").glob("events.out.tfevents.*"))
    with pytest.raises(UserError, match=r"already finished epoch 1 of 1; pass a larger --epochs"):
        train.main([*fast, "--resume", str(tmp_path / "run" / "last.pth")])
    assert sorted((tmp_path / "run").glob("events.out.tfevents.*")) == events


def test_a_resume_that_does_not_fit_names_the_weights(tmp_path):
    from torch import nn

    from common import checkpoint

    state = {"weight": torch.zeros(5, 4), "bias": torch.zeros(5), "extra": torch.zeros(1)}
    assert checkpoint.state_dict_mismatch(nn.Linear(4, 3), state) == (
        "unexpected 1: extra; shape-mismatched 2: weight [5, 4] vs [3, 4], bias [5] vs [3]")
    assert checkpoint.state_dict_mismatch(nn.Sequential(*[nn.Linear(1, 1)] * 2), {}) == "missing 4: 0.weight, 0.bias, 1.weight, ..."


def test_a_decompression_bomb_in_a_predict_list_is_reported_and_the_rest_predicted(tmp_path, capsys):
    """A 14000×14000 1-bit PNG (24 kB on disk, 196 MP) is over PIL's bomb limit: named like any unreadable image."""
    bomb, good = tmp_path / "bomb.png", tmp_path / "good.png"
    Image.new("1", (14000, 14000)).save(bomb)
    Image.new("RGB", (30, 30), (200, 0, 0)).save(good)
    ckpt = fcn_checkpoint(tmp_path / "fcn.pth")
    assert load("06_fcn", "predict").main([str(ckpt), str(bomb), str(good), "--output-dir", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert f"{bomb}: error: cannot read image (DecompressionBombError: Image size (196000000 pixels) exceeds" in err
    assert (tmp_path / "o" / "good_mask.png").is_file() and not (tmp_path / "o" / "bomb_mask.png").exists()
    model = load("03_cifar_train").build_model("tudui", num_classes=2)
    torch.save({"model": model.state_dict(), "model_name": "tudui", "class_names": ["a", "b"],
                "preprocess": {"resize": [32, 32]}}, tmp_path / "c.pth")
    assert load("03_cifar_train", "predict").main([str(tmp_path / "c.pth"), str(bomb), str(good)]) == 1
    captured = capsys.readouterr()
    assert f"{bomb}: error: cannot read image (DecompressionBombError" in captured.err
    assert captured.out.startswith(f"{good}: ")


ALL_TRAINERS = ["01_dataset", "02_tensorboard_transforms", "03_cifar_train", "04_dilated_conv", "05_mobilenet",
                "06_fcn", "07_deeplab", "08_transfer", "09_googlenet"]


@pytest.mark.parametrize("folder", ALL_TRAINERS)
def test_a_text_file_as_resume_or_checkpoint_is_one_line_in_every_folder(folder, tmp_path):
    """torch.load said `KeyError: 101` for a text file (all 9 folders): now one line naming the file, before any data is
    read or anything written."""
    notes = tmp_path / "notes.txt"
    notes.write_text("hello world\n")
    message = rf"^{notes} is not a PyTorch file \(neither a zip archive nor a pickle; it starts with b'hell'\)$"
    with pytest.raises(UserError, match=message):
        load(folder, "train").main(["--data", "synthetic", "--resume", str(notes), "--output-dir", str(tmp_path / "o"),
                                    *NEEDS.get(folder, [])])
    assert not (tmp_path / "o").exists()
    Image.new("RGB", (32, 32)).save(tmp_path / "a.png")
    if folder == "02_tensorboard_transforms":  # its predict.py is the transforms demo; --checkpoint classifies too
        argv = [str(tmp_path / "a.png"), "--checkpoint", str(notes), "--crop-size", "16", "--logdir", str(tmp_path)]
    else:
        argv = [str(notes), str(tmp_path / "a.png")]
        if folder in SEG_TRAINERS:
            argv += ["--output-dir", str(tmp_path / "p")]
    with pytest.raises(UserError, match=message):
        load(folder, "predict").main(argv)
