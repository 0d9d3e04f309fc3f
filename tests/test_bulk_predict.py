"""Bulk prediction (issue 14): files, folders and globs; batches of mixed sizes; text / csv / json; outputs that keep
the folder structure; unreadable files reported by name with exit code 1."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from common.errors import UserError
from common.inputs import expand_inputs
from util import load


def images(root, names, size=(32, 32)):
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (200, 30, 30)).save(root / name)


def test_expand_inputs_files_folders_globs_and_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images(tmp_path, ["shots/a/x.jpg", "shots/b/x.jpg", "shots/b/y.png", "loose.png", "more/z.jpg"])
    (tmp_path / "shots" / "notes.txt").write_text("not an image")
    (tmp_path / "shots" / ".hidden").mkdir()
    images(tmp_path, ["shots/.hidden/h.jpg"])
    found = expand_inputs(["loose.png", "shots", "more/*.jpg"])
    assert [(str(i.path), str(i.name)) for i in found] == [
        ("loose.png", "loose"), ("shots/a/x.jpg", "shots/a/x"), ("shots/b/x.jpg", "shots/b/x"),
        ("shots/b/y.png", "shots/b/y"), ("more/z.jpg", "z")]  # sorted in a folder, no .txt, no hidden folder
    assert [str(i.name) for i in expand_inputs(["shots/**/*.jpg"])] == ["a/x", "b/x"]  # below the glob's fixed part
    assert len(expand_inputs(["loose.png", "loose.png"])) == 1
    with pytest.raises(UserError, match=r"^shots/a/x.jpg and shots/b/x.jpg would both write outputs named x; "):
        expand_inputs(["shots/a/x.jpg", "shots/b/x.jpg"])
    with pytest.raises(UserError, match=r"^nowhere.jpg: no such file or folder$"):
        expand_inputs(["nowhere.jpg"])
    with pytest.raises(UserError, match=r"^more/\*.gif matches no image files$"):
        expand_inputs(["more/*.gif"])
    images(tmp_path, ["more/.thumb.jpg"])  # a hidden file is never an image input, even asked for by name pattern
    with pytest.raises(UserError, match=r"^more/\.\*.jpg matches no image files$"):
        expand_inputs(["more/.*.jpg"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"^empty is a folder with no images"):
        expand_inputs(["empty"])


@pytest.fixture(scope="module")
def cls_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("cls")
    load("01_dataset", "train").main(["--data", "synthetic", "--synthetic-size", "16", "--epochs", "1", "-b", "8",
                                      "--output-dir", str(out)])
    return out / "last.pth"


def test_classification_bulk_csv_json_batches_and_failures(cls_checkpoint, tmp_path, capsys):
    predict = load("01_dataset", "predict")
    images(tmp_path, [f"in/{i}.png" for i in range(5)])
    images(tmp_path, ["in/big.png"], size=(40, 48))  # another size: its own batch when the model resizes nothing
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    assert predict.main([str(cls_checkpoint), str(tmp_path / "in"), "--topk", "2", "--format", "csv", "-b", "2",
                         "--output-dir", str(tmp_path / "out")]) == 1  # one unreadable file
    captured = capsys.readouterr()
    assert "broken.png: error: cannot read image" in captured.err and "6 predictions:" in captured.out
    rows = list(csv.reader((tmp_path / "out" / "predictions.csv").open()))
    assert rows[0] == ["path", "class1", "probability1", "class2", "probability2"] and len(rows) == 7
    assert {r[1] for r in rows[1:]} <= {"ants", "bees"} and all(abs(float(r[2]) + float(r[4]) - 1) < 1e-4 for r in rows[1:])
    # one image at a time gives the same probabilities as batches of 2
    assert predict.main([str(cls_checkpoint), str(tmp_path / "in" / "big.png"), str(tmp_path / "in" / "0.png"),
                         "--format", "json", "-b", "1"]) == 0
    single = json.loads(capsys.readouterr().out)
    batched = {r[0]: float(r[2]) for r in rows[1:]}
    for row in single:
        assert row["top"][0]["probability"] == pytest.approx(batched[row["path"]], abs=1e-5)
    with pytest.raises(UserError, match="--output-dir writes a table or CAMs: add --format csv, --format json or --cam"):
        predict.main([str(cls_checkpoint), str(tmp_path / "in"), "--output-dir", str(tmp_path / "x")])


def test_progress_bar_past_eight_images_and_no_silent_cpu_fallback(cls_checkpoint, tmp_path, capsys):
    import torch

    from common.errors import UserError

    predict = load("01_dataset", "predict")
    images(tmp_path, [f"eight/{i}.png" for i in range(8)] + [f"nine/{i}.png" for i in range(9)])
    assert predict.main([str(cls_checkpoint), str(tmp_path / "eight")]) == 0
    assert "8/8" not in capsys.readouterr().err  # a few images: no bar
    assert predict.main([str(cls_checkpoint), str(tmp_path / "nine")]) == 0
    assert "9/9" in capsys.readouterr().err  # past eight: tqdm's bar on stderr
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="--device cuda requested but CUDA is not available"):
            predict.main([str(cls_checkpoint), str(tmp_path / "eight"), "--device", "cuda"])


def test_batches_group_equal_shapes_and_report_unreadable_alone(tmp_path):
    from common.inputs import Input
    from common.predict import batches

    images(tmp_path, ["a.png", "b.png", "c.png"])
    images(tmp_path, ["d.png"], size=(8, 8))
    (tmp_path / "e.png").write_bytes(b"")
    items = [Input(tmp_path / f"{n}.png", tmp_path / n) for n in "abcde"]
    to_tensor = lambda im: torch.zeros(3, im.height, im.width)  # noqa: E731
    got = [([i.path.stem for i in group], x.shape if isinstance(x, torch.Tensor) else type(x).__name__)
           for group, x in batches(items, to_tensor, 2)]
    assert got == [(["a", "b"], (2, 3, 32, 32)), (["c"], (1, 3, 32, 32)), (["d"], (1, 3, 8, 8)),
                   (["e"], "ImageReadError")]


def test_segmentation_bulk_keeps_folders_and_writes_class_shares(tmp_path, capsys):
    train = load("06_fcn", "train")
    train.main(["--data", "synthetic", "--backbone", "light", "--synthetic-size", "8", "-b", "4", "--epochs", "1",
                "--image-size", "32", "--output-dir", str(tmp_path / "run")])
    images(tmp_path, ["pics/a/x.png", "pics/b/x.png"], size=(33, 29))
    out = tmp_path / "pred"
    assert load("06_fcn", "predict").main([str(tmp_path / "run" / "last.pth"), str(tmp_path / "pics"),
                                           "--output-dir", str(out)]) == 0
    for name in ("pics/a/x", "pics/b/x"):
        mask = Image.open(out / f"{name}_mask.png")
        assert mask.size == (33, 29) and (out / f"{name}_overlay.png").is_file()
    rows = list(csv.reader((out / "shares.csv").open()))
    assert rows[0] == ["path", "background", "disk", "square", "triangle", "ring", "bar"] and len(rows) == 3
    assert all(abs(sum(map(float, r[1:])) - 1) < 1e-4 for r in rows[1:])  # every pixel is in one class
    # a second run into the same folder replaces its files (--alpha is a number: a fainter overlay)
    before = np.asarray(Image.open(out / "pics/a/x_overlay.png"), dtype=float)
    assert load("06_fcn", "predict").main([str(tmp_path / "run" / "last.pth"), str(tmp_path / "pics"), "--alpha", "0",
                                           "--output-dir", str(out)]) == 0
    plain = np.asarray(Image.open(tmp_path / "pics/a/x.png"), dtype=float)
    assert np.array_equal(np.asarray(Image.open(out / "pics/a/x_overlay.png"), dtype=float), plain)  # alpha 0: the photo
    assert before.shape == plain.shape
