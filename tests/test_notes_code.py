"""notes_code.py (the notes' code as written, made runnable) agrees with the repo's version of it: 01's MyData and label
files, 02's TensorBoard events, 03's training loop against common/engine.py (same weights after the same steps), 08's
四步 against `load_matching`. Where the notes are wrong the tests pin the difference, so an erratum stays visible."""
import copy
import io

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import IMAGES, SCALARS, EventAccumulator
from torch import nn
from torch.utils.data import DataLoader

from common import engine, metrics, runtime
from common.synthetic import SyntheticShapes, write_imagefolder
from common.weights import freeze, load_matching
from util import load

SYNTHETIC = 256  # 03: 4 steps of 64 per epoch, 64 test images


def items(dataset) -> dict[str, tuple[np.ndarray, str]]:
    """file name → (pixels, label) for a MyData of the notes (names) or of the repo (paths)."""
    return {getattr(name, "name", name): (np.array(dataset[i][0]), dataset[i][1])
            for i, name in enumerate(dataset.img_path)}


# 01_dataset

def test_01_mydata_and_label_files_match_the_repo(tmp_path):
    notes, repo = load("01_dataset", "notes_code"), load("01_dataset", "dataset")
    make_labels = load("01_dataset", "make_labels").make_labels
    out = notes.main(["--output-dir", str(tmp_path), "--synthetic-size", "130"])
    root = tmp_path / "dataset/train/train"
    assert [len(out["ants_dataset"]), len(out["bees_dataset"]), len(out["train_dataset"])] == [65, 65, 130]
    assert [tuple(imgs.shape) for imgs, _ in out["test_loader"]] == [(64, 3, 32, 32)] * 2  # drop_last: 130 → 2 batches

    for folder in ("ants_image", "bees_image"):  # the notes' layout: the same images, but the label keeps "_image"
        mine, theirs = items(notes.MyData(str(root), folder)), items(repo.MyData(root, folder))
        assert mine.keys() == theirs.keys()
        for name, (pixels, label) in mine.items():
            assert np.array_equal(pixels, theirs[name][0]) and label == theirs[name][1] + "_image" == folder

    # the notes' 标注标签 wrote exactly the files the repo's make_labels would: it finds all of them unchanged
    counts = make_labels(root, log=None)
    assert (counts["bees"]["unchanged"], counts["bees"]["written"], counts["ants"]["written"]) == (65, 0, 65)

    # ImageFolder's layout (folders named ants/, bees/, the tutorial's data): identical items, labels included
    shapes = SyntheticShapes(6, num_classes=2, seed=1)
    shapes.classes = ["ants", "bees"]
    flat = write_imagefolder(shapes, tmp_path / "flat")
    for folder in shapes.classes:
        assert {k: (v[0].tobytes(), v[1]) for k, v in items(notes.MyData(str(flat), folder)).items()} == \
               {k: (v[0].tobytes(), v[1]) for k, v in items(repo.MyData(flat, folder)).items()}


# 02_tensorboard_transforms

def events(logdir) -> EventAccumulator:
    return EventAccumulator(str(logdir), size_guidance={IMAGES: 0, SCALARS: 0}).Reload()


def decoded(acc: EventAccumulator, tag: str) -> list[np.ndarray]:
    return [np.array(Image.open(io.BytesIO(e.encoded_image_string))) for e in acc.Images(tag)]


def test_02_event_tags_match_predict_py(tmp_path):
    notes, predict = load("02_tensorboard_transforms", "notes_code"), load("02_tensorboard_transforms", "predict")
    yy, xx = np.mgrid[0:48, 0:80]  # not square, so Resize((512, 512)) and Resize(512) differ
    picture = Image.fromarray(np.stack([xx * 3, yy * 5, np.full_like(xx, 90)], -1).astype(np.uint8))
    for path in (notes.ANTS_IMAGE, notes.PHOTO):
        (tmp_path / path).parent.mkdir(parents=True)
        picture.save(tmp_path / path, quality=95)
    out = notes.main(["--data", "files", "--data-path", str(tmp_path), "--output-dir", str(tmp_path / "notes")])
    predict.main([str(tmp_path / notes.PHOTO), "--logdir", str(tmp_path / "repo"), "--crop-size", "16", "--crops", "1",
                  "--sheet", str(tmp_path / "sheet.png")])
    mine, theirs = events(out["logdir"]), events(tmp_path / "repo")
    assert set(mine.Tags()["images"]) == {"test", "TensorImage", "Totensor", "Normalize", "Resize", "Resize2"}
    assert mine.Tags()["scalars"] == theirs.Tags()["scalars"] == ["y=2x"]
    same = {"test": "numpy_HWC", "TensorImage": "ToTensor", "Totensor": "ToTensor", "Normalize": "Normalize",
            "Resize": "Resize"}  # notes' tag → repo's tag, same picture
    for tag, repo_tag in same.items():
        (a,), (b,) = decoded(mine, tag), decoded(theirs, repo_tag)
        assert a.shape == b.shape and np.array_equal(a, b), tag
    # errata: Resize2 logs img_resize (512×512) instead of img_resize_2 (short side 512); y=2x plots y = x
    assert [a.shape for a in decoded(mine, "Resize2")] == [(512, 512, 3)]
    assert [b.shape for b in decoded(theirs, "Resize2")] == [(512, 853, 3)]
    assert tuple(out["img_resize_2"].shape) == (3, 512, 853)  # what the notes meant to log
    assert [e.value for e in mine.Scalars("y=2x")] == list(range(100))
    assert [e.value for e in theirs.Scalars("y=2x")] == [2 * i for i in range(100)]

    # the default, offline run: a synthetic 64×128 picture at the notes' paths
    synthetic = notes.main(["--output-dir", str(tmp_path / "synthetic")])
    assert set(events(synthetic["logdir"]).Tags()["images"]) == set(mine.Tags()["images"])
    assert tuple(synthetic["img_resize_2"].shape) == (3, 512, 1024)


# 03_cifar_train

@pytest.fixture(scope="module")
def notes_tudui(tmp_path_factory) -> nn.Module:
    """The notes' 完整项目代码 for 2 epochs (8 steps) on CPU; its 模型训练 section runs too (512 steps of batch 1)."""
    notes = load("03_cifar_train", "notes_code")
    out = notes.main(["--synthetic-size", str(SYNTHETIC), "--epochs", "2", "--device", "cpu", "--seed", "0",
                      "--output-dir", str(tmp_path_factory.mktemp("notes03"))])
    assert isinstance(out["tom"], nn.Module)
    return out["tudui"]


def engine_tudui(output_dir, lr: float = 1e-2) -> nn.Module:
    """train.py's pieces into engine.fit for the same 2 epochs: train.py's data (--loader dataloader --no-normalize is
    the notes' ToTensor), its model and SGD, CPU fp32 (AMP and channels_last off; fit adds no scheduler and its grad
    scaler is disabled without AMP). Only the training loader is the notes' (shuffle with a generator seeded alike):
    train.py's DistributedSampler draws another order."""
    train = load("03_cifar_train", "train")
    args = train.get_args_parser().parse_args([
        "--data", "synthetic", "--synthetic-size", str(SYNTHETIC), "--epochs", "2", "--lr", str(lr), "--seed", "0",
        "--device", "cpu", "--no-amp", "--no-channels-last", "--loader", "dataloader", "--no-normalize",
        "--output-dir", str(output_dir)])
    rt = runtime.setup(args)
    assert rt.amp_dtype is None and not rt.channels_last
    train_set, test_set, classes = train.load_data(args)
    _, test_loader = train.make_loaders(train_set, test_set, args, rt)  # sets the ToTensor transforms
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True,
                              generator=torch.Generator().manual_seed(args.seed))
    torch.manual_seed(args.seed)
    model = load("03_cifar_train").build_model("tudui", num_classes=len(classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    engine.fit(model, nn.CrossEntropyLoss(), optimizer, train_loader, test_loader, args=args, rt=rt,
               metric=metrics.Accuracy(), meta=engine.Meta(model_name="tudui", class_names=classes))
    return model


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], msg=lambda m, key=key: f"{key}: {m}")


def test_03_notes_loop_and_engine_give_the_same_weights(notes_tudui, tmp_path):
    torch.manual_seed(0)
    assert not all(torch.equal(p, q) for p, q in zip(notes_tudui.parameters(),
                                                     load("03_cifar_train").Tudui().parameters()))  # it trained
    assert_same_weights(notes_tudui, engine_tudui(tmp_path))


def test_03_agreement_check_fails_for_another_lr(notes_tudui, tmp_path):
    with pytest.raises(AssertionError):
        assert_same_weights(notes_tudui, engine_tudui(tmp_path, lr=1.1e-2))


# 08_transfer

def test_08_four_steps_load_what_load_matching_loads(tmp_path):
    notes = load("08_transfer", "notes_code")
    out = notes.main(["--arch", "mobilenet_v2", "--num-classes", "3", "--output-dir", str(tmp_path)])
    assert set(out["pretrained_dict"]) == set(out["model"].state_dict()) - {"classifier.1.weight", "classifier.1.bias"}
    assert all(not p.requires_grad for p in out["model"].features.parameters())
    assert all(p.requires_grad for p in out["model"].classifier.parameters())

    # same starting model, same file: the 四步 and load_matching end with equal tensors and agree on what loaded
    torch.manual_seed(0)
    fresh = torchvision.models.mobilenet_v2(num_classes=3)
    by_notes, by_repo = copy.deepcopy(fresh), copy.deepcopy(fresh)
    kept = notes.load_pretrained(by_notes, out["model_path"], torch.device("cpu"))
    report = load_matching(by_repo, out["model_path"], log=None)
    assert set(report.loaded) == set(kept) and set(report.mismatched) == {"classifier.1.weight", "classifier.1.bias"}
    for key, value in by_notes.state_dict().items():
        assert torch.equal(value, by_repo.state_dict()[key]), key
    assert torch.equal(by_notes.classifier[1].weight, fresh.classifier[1].weight)  # the mismatched head kept its init

    # 冻结训练: the same parameters frozen as common's freeze (which also keeps BatchNorm statistics fixed)
    freeze(by_repo, ["features."])
    assert [p.requires_grad for p in out["model"].parameters()] == [p.requires_grad for p in by_repo.parameters()]

    # erratum: a key the model lacks (here a torchvision resnet's) is a KeyError for the notes, reported by the repo
    extra = {**torch.load(out["model_path"]), "fc.weight": torch.zeros(3, 512)}
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(KeyError, match="fc.weight"):
        notes.load_pretrained(copy.deepcopy(fresh), tmp_path / "extra.pth", torch.device("cpu"))
    assert load_matching(copy.deepcopy(fresh), tmp_path / "extra.pth", log=None).unexpected == ["fc.weight"]
