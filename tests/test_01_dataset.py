"""01_dataset: MyData / LabelFileData, make_labels.py, the DataLoader arguments, bad files, and train → predict."""
import io

import pytest
import torch
from PIL import Image

from common.errors import UserError
from common.runtime import Runtime
from util import leaf_layers, load


@pytest.fixture(scope="module")
def ds():
    return load("01_dataset", "dataset")


@pytest.fixture(scope="module")
def ml():
    return load("01_dataset", "make_labels")


@pytest.fixture(scope="module")
def train():
    return load("01_dataset", "train")


def make_layout(root, counts=(("ants", 3), ("bees", 2)), suffix="_image", size=(20, 14)):
    """Tiny images; the red channel encodes the index so tests can tell images apart."""
    for name, n in counts:
        folder = root / f"{name}{suffix}"
        folder.mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", size, (40 * i, 100, 200)).save(folder / f"{name}{i}.jpg")
    return root


def test_label_from_folder_name_and_len(ds, tmp_path):
    make_layout(tmp_path)
    ants, bees = ds.MyData(tmp_path, "ants_image"), ds.MyData(tmp_path, "bees_image")
    img, label = ants[0]
    assert (len(ants), len(bees), label, bees[1][1]) == (3, 2, "ants", "bees")
    assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (20, 14)
    train_dataset = ants + bees  # the notes' ConcatDataset
    assert len(train_dataset) == 5 and [train_dataset[i][1] for i in range(5)] == ["ants"] * 3 + ["bees"] * 2
    indexed = ds.MyData(tmp_path, "bees_image", class_to_idx={"ants": 0, "bees": 1})
    assert indexed[0][1] == 1
    assert ds.label_from_folder("golden_retriever_image") == "golden_retriever"  # the notes' split('_')[0] gives "golden"
    assert ds.label_from_folder("ants") == "ants"  # ImageFolder's layout works too
    with pytest.raises(UserError, match="'ants' is not one of"):
        ds.MyData(tmp_path, "ants_image", class_to_idx={"bees": 0})


def test_label_files_round_trip(ds, ml, tmp_path):
    make_layout(tmp_path)
    (tmp_path / "ants_image" / "readme.md").write_text("not an image")
    counts = ml.make_labels(tmp_path, log=None)
    assert counts["ants"]["written"] == 3 and counts["bees"]["written"] == 2 and counts["ants"]["ignored"] == 1
    assert (tmp_path / "ants_label" / "ants0.txt").read_text() == "ants"
    assert sorted(p.name for p in (tmp_path / "bees_label").iterdir()) == ["bees0.txt", "bees1.txt"]
    again = ml.make_labels(tmp_path, log=None)  # idempotent
    assert again["ants"]["written"] == 0 and again["ants"]["unchanged"] == 3
    (tmp_path / "ants_image" / "readme.md").unlink()
    from_files = ds.LabelFileData(tmp_path, "ants_image", "ants_label")
    from_folder = ds.MyData(tmp_path, "ants_image")
    assert [from_files[i][1] for i in range(3)] == [from_folder[i][1] for i in range(3)] == ["ants"] * 3
    assert from_files[2][0].getpixel((0, 0))[0] == pytest.approx(80, abs=3)  # same image order as MyData

    # a label that disagrees with its folder is read as written, and only replaced with --force
    (tmp_path / "bees_label" / "bees0.txt").write_text("ants")
    assert ds.LabelFileData(tmp_path, "bees_image", "bees_label", class_to_idx={"ants": 0, "bees": 1})[0][1] == 0
    (tmp_path / "bees_image" / "bees9.jpg").write_bytes((tmp_path / "bees_image" / "bees0.jpg").read_bytes())
    with pytest.raises(UserError, match=r"1 label file.*bees0.txt says 'ants'.*--force"):
        ml.main([str(tmp_path)])
    assert (tmp_path / "bees_label" / "bees0.txt").read_text() == "ants"
    assert not (tmp_path / "bees_label" / "bees9.txt").exists()  # nothing written while refusing
    forced = ml.main([str(tmp_path), "--force"])
    assert forced["bees"]["overwritten"] == 1 and forced["bees"]["written"] == 1
    assert (tmp_path / "bees_label" / "bees0.txt").read_text() == "bees"

    (tmp_path / "bees_label" / "bees1.txt").unlink()
    with pytest.raises(UserError, match=r"bees1.jpg has no label file .*bees1.txt"):
        ds.LabelFileData(tmp_path, "bees_image", "bees_label")
    (tmp_path / "bees_label" / "bees1.txt").write_text("wasps")
    with pytest.raises(UserError, match=r"bees1.txt says 'wasps'"):
        ds.LabelFileData(tmp_path, "bees_image", "bees_label", class_to_idx={"ants": 0, "bees": 1})


def loader_args(train, *extra):
    return train.get_args_parser().parse_args(["--data", "synthetic", "-b", "2", "-j", "0", *extra])


def test_drop_last_drops_the_remainder_and_batches_have_the_right_shape(train, tmp_path):
    make_layout(tmp_path)
    transform = train.transforms.Compose([train.transforms.Resize((8, 8)), train.transforms.ToTensor()])
    data = train.build_split(tmp_path, "notes-layout", "folder", transform, {"ants": 0, "bees": 1}, False)
    rt = Runtime(device=torch.device("cpu"))

    loader, val = train.make_loaders(data, data, loader_args(train, "--no-shuffle"), rt)
    batches = list(loader)
    assert [tuple(x.shape) for x, _ in batches] == [(2, 3, 8, 8), (2, 3, 8, 8), (1, 3, 8, 8)]
    assert torch.cat([y for _, y in batches]).tolist() == [0, 0, 0, 1, 1] and batches[0][1].dtype == torch.int64
    assert sum(len(y) for _, y in val) == 5  # the test loader keeps every image

    dropped, _ = train.make_loaders(data, data, loader_args(train, "--no-shuffle", "--drop-last"), rt)
    assert len(dropped) == 2 and [tuple(x.shape) for x, _ in dropped] == [(2, 3, 8, 8)] * 2

    shuffled, _ = train.make_loaders(data, data, loader_args(train), rt)
    torch.manual_seed(1)
    order = torch.cat([y for _, y in shuffled]).tolist()
    assert sorted(order) == [0, 0, 0, 1, 1] and len(shuffled) == 3
    with pytest.raises(UserError, match="leaves no batch"):
        train.make_loaders(data, data, loader_args(train, "--drop-last", "-b", "8"), rt)


def test_corrupt_and_non_image_files_are_named_or_skipped(ds, tmp_path, capsys):
    make_layout(tmp_path)
    folder = tmp_path / "ants_image"
    (folder / "broken.jpg").write_bytes(b"<html>404</html>")
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buf, "JPEG")
    (folder / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (folder / ".DS_Store").write_bytes(b"\x00\x01")  # hidden files are not data
    with pytest.raises(UserError, match=r"broken.jpg is not a readable image.*--skip-bad"):
        ds.MyData(tmp_path, "ants_image")
    (folder / "broken.jpg").unlink()
    with pytest.raises(UserError, match=r"truncated.jpg is not a readable image"):  # verify() alone misses this
        ds.MyData(tmp_path, "ants_image")
    skipped = ds.MyData(tmp_path, "ants_image", skip_bad=True)
    assert len(skipped) == 3 and all(p.name.startswith("ants") for p in skipped.img_path)
    err = capsys.readouterr().err
    assert err.count("warning: skipping") == 1 and f"{folder / 'truncated.jpg'}: not a readable image" in err

    (tmp_path / "wasps_image").mkdir()
    with pytest.raises(UserError, match=r"wasps_image contains no images$"):
        ds.MyData(tmp_path, "wasps_image")
    (tmp_path / "wasps_image" / "x.jpg").write_bytes(b"junk")
    with pytest.raises(UserError, match=r"wasps_image contains no readable images$"):
        ds.MyData(tmp_path, "wasps_image", skip_bad=True)


def test_train_reports_a_bad_file_before_training_and_skip_bad_runs(train, tmp_path, capsys):
    for split in ("train", "val"):
        make_layout(tmp_path / "data" / "dataset" / split)
    bad = tmp_path / "data" / "dataset" / "train" / "bees_image" / "oops.png"
    bad.write_text("text saved as png")
    common = ["--data", "notes-layout", "--data-path", str(tmp_path / "data"), "--epochs", "1", "-b", "2",
              "--image-size", "16", "--output-dir", str(tmp_path / "out")]
    with pytest.raises(UserError, match="oops.png is not a readable image"):
        train.main(common)
    assert not (tmp_path / "out" / "last.pth").exists()
    summary = train.main([*common, "--skip-bad"])
    assert f"skipping {bad}" in capsys.readouterr().err
    ckpt = torch.load(summary["checkpoint"], weights_only=True)
    assert ckpt["class_names"] == ["ants", "bees"] and ckpt["preprocess"]["resize"] == [16, 16]


def test_synthetic_writes_the_notes_layout_learns_and_predicts(train, tmp_path, capsys):
    out = tmp_path / "run"
    summary = train.main(["--data", "synthetic", "--synthetic-size", "200", "--image-size", "32", "--epochs", "4",
                          "--labels", "files", "--output-dir", str(out)])
    root = out / "dataset" / "train"
    assert sorted(p.name for p in root.iterdir()) == ["ants_image", "ants_label", "bees_image", "bees_label"]
    assert len(list((root / "ants_image").glob("*.png"))) == len(list((root / "ants_label").glob("*.txt"))) == 100
    assert summary["metrics"]["accuracy"] >= 0.75  # 2 classes: chance is 0.5

    predict = load("01_dataset", "predict")
    capsys.readouterr()
    images = [next((out / "dataset" / "val" / f"{name}_image").iterdir()) for name in ("ants", "bees")]
    assert predict.main([str(out / "best.pth"), *map(str, images), "--topk", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == list(map(str, images))
    assert all("ants (" in line and "bees (" in line for line in lines)

    (tmp_path / "foreign" / "dataset").mkdir(parents=True)  # never delete a folder --data synthetic did not write
    with pytest.raises(UserError, match="was not written by --data synthetic"):
        train.main(["--data", "synthetic", "--output-dir", str(tmp_path / "foreign"), "--epochs", "1"])


def test_imagefolder_layout_and_missing_data(train, tmp_path):
    for split in ("train", "val"):
        make_layout(tmp_path / "hymenoptera_data" / split, suffix="")
    summary = train.main(["--data", "imagefolder", "--data-path", str(tmp_path), "--epochs", "1", "-b", "2",
                          "--image-size", "16", "--output-dir", str(tmp_path / "out")])
    assert torch.load(summary["checkpoint"], weights_only=True)["class_names"] == ["ants", "bees"]
    empty = ["--data-path", str(tmp_path / "nothing"), "--output-dir", str(tmp_path / "o")]
    with pytest.raises(UserError, match="no hymenoptera data .*--download"):
        train.main(["--data", "imagefolder", *empty])
    with pytest.raises(UserError, match=r"nothing/dataset/train not found"):
        train.main(["--data", "notes-layout", *empty])
    with pytest.raises(UserError, match="--labels files needs --data notes-layout"):
        train.main(["--data", "imagefolder", "--labels", "files", *empty])


# ------------------------------------------------------------------------------------------------------ model.py
def test_small_cnn_layers_defaults_and_build_model():
    """Three conv 3×3 (padding 1, no bias: BatchNorm has one) → BN → ReLU → 2×2 max-pool stages of width 16, 32, 64,
    a global average pool and one linear layer; 2 classes (ants, bees) by default."""
    m = load("01_dataset")
    expected = []
    for i, (cin, cout) in enumerate(((3, 16), (16, 32), (32, 64))):
        expected += [(f"features.{i}.0", "Conv2d", cin, cout, (3, 3), (1, 1), (1, 1), 1, False),
                     (f"features.{i}.1", "BatchNorm2d", cout), (f"features.{i}.2", "ReLU"),
                     (f"features.{i}.3", "MaxPool2d", 2, 2)]
    expected += [("pool", "AdaptiveAvgPool2d", 1), ("classifier", "Linear", 64, 2, True)]
    assert leaf_layers(m.SmallCNN()) == expected
    assert leaf_layers(m.build_model("smallcnn")) == expected
    built = m.build_model("smallcnn", 5, width=8)  # num_classes positional, kwargs reach SmallCNN
    assert leaf_layers(built)[8][2:4] == (16, 32) and leaf_layers(built)[-1] == ("classifier", "Linear", 32, 5, True)
    with pytest.raises(ValueError, match=r"^unknown model 'resnet18'; choose from \('smallcnn',\)$"):
        m.build_model("resnet18")


def test_small_cnn_forward_halves_each_stage_and_averages_globally():
    """The shape check of model.py (N×3×64×64 → N×2), each stage halving H and W, and the logits being the linear
    layer applied to the per-channel mean of the last feature map (any input size works)."""
    m = load("01_dataset")
    torch.manual_seed(0)
    model = m.SmallCNN().eval()
    assert model(torch.ones((4, 3, 64, 64))).shape == (4, 2)
    shapes = []
    for block in model.features:
        block.register_forward_hook(lambda mod, i, o: shapes.append(tuple(o.shape)))
    x = torch.randn(3, 3, 40, 24)
    with torch.no_grad():
        logits = model(x)
        features = model.features(x)
    assert shapes[:3] == [(3, 16, 20, 12), (3, 32, 10, 6), (3, 64, 5, 3)]
    torch.testing.assert_close(logits, model.classifier(features.mean((2, 3))))
