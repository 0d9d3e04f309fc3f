"""Tests written for mutants that survived the 2026-12-02 mutation sample of common/ (tests/README.md): each asserts the
behaviour one surviving edit broke without any test noticing."""
from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from PIL import Image

from common import classification, experiment, metrics, seg_predict
from common.checkpoint import state_dict_mismatch
from common.errors import UserError
from common.runtime import Runtime
from common.synthetic import SyntheticContext


def test_load_cifar10_passes_each_split_its_transform_and_the_download_flag(tmp_path, monkeypatch):
    calls = []

    class FakeCIFAR10:
        base_folder = "cifar-10-batches-py"

        def __init__(self, root, train, transform, download):
            calls.append((train, transform, download))

    monkeypatch.setattr(classification.torchvision.datasets, "CIFAR10", FakeCIFAR10)
    monkeypatch.setattr(classification, "cifar10_problem", lambda path: None)
    train, test = classification.load_cifar10(tmp_path, True, "train-tf", "test-tf")
    assert calls == [(True, "train-tf", True), (False, "test-tf", True)]
    assert isinstance(train, FakeCIFAR10) and isinstance(test, FakeCIFAR10)

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(classification.torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(UserError, match=r"^could not download CIFAR-10 into .* \(OSError: offline\?\); "
                                        r"use --data synthetic to run offline$"):
        classification.load_cifar10(tmp_path / "x", True)


def loader_args(**kw) -> argparse.Namespace:
    base = dict(data="synthetic", synthetic_size=4, batch_size=4, eval_batch_size=None, seed=0, workers=0,
                skip_bad=False, data_path=None, download=False, augment=True)
    return argparse.Namespace(**{**base, **kw})


def test_synthetic_loaders_draw_val_at_the_size_and_seed_asked_and_normalise_with_the_mean():
    rt = Runtime(device=torch.device("cpu"))
    _, val, _, pre = classification.classification_loaders(loader_args(), rt, 16, synthetic_size=4, mean=[0.2] * 3,
                                                            std=[0.5] * 3)
    assert pre == {"resize": [16, 16], "mean": [0.2] * 3, "std": [0.5] * 3}
    x, _ = next(iter(val))
    assert x.shape == (1, 3, 16, 16)  # a quarter of 4 images, at the size asked (not the generator's default)
    other = next(iter(classification.classification_loaders(loader_args(seed=1), rt, 16, synthetic_size=4,
                                                            mean=[0.2] * 3, std=[0.5] * 3)[1]))[0]
    assert not torch.equal(x, other)  # the val set follows --seed (same normalisation: only the seed differs)
    from common.synthetic import SyntheticShapes

    pixels = torch.from_numpy(SyntheticShapes(1, image_size=16, seed=0, split="val").data).permute(0, 3, 1, 2) / 255
    assert torch.allclose(x, (pixels - 0.2) / 0.5, atol=1e-5)  # mean 0.2, std 0.5 applied


def test_cifar10_loaders_use_the_resize_for_val_and_store_mean_and_std(tmp_path, monkeypatch):
    seen = {}

    def fake_load(path, download, train_tf, val_tf):
        seen.update(train=train_tf, val=val_tf)
        data = torch.utils.data.TensorDataset(torch.zeros(2, 3, 8, 8), torch.zeros(2, dtype=torch.long))
        data.classes = ["a", "b"]
        return data, data

    monkeypatch.setattr(classification, "load_cifar10", fake_load)
    rt = Runtime(device=torch.device("cpu"))
    *_, classes, pre = classification.classification_loaders(loader_args(data="cifar10", data_path=tmp_path), rt, 24,
                                                             synthetic_size=4)
    assert classes == ["a", "b"] and pre == {"resize": [24, 24], "mean": list(classification.IMAGENET_MEAN),
                                             "std": list(classification.IMAGENET_STD)}
    assert [type(t).__name__ for t in seen["val"].transforms] == ["Resize", "ToTensor", "Normalize"]
    assert [type(t).__name__ for t in seen["train"].transforms] == ["Resize", "RandomCrop", "RandomHorizontalFlip",
                                                                    "ToTensor", "Normalize"]


def test_boundary_iou_upsamples_small_logits_and_ignores_labels_past_the_classes():
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[0, 2:6, 2:6] = 1
    exact = torch.zeros(1, 2, 8, 8)
    exact[0, 1] = (target[0] == 1).float() * 10
    small = torch.nn.functional.interpolate(exact, size=(4, 4), mode="bilinear", align_corners=False)
    up = torch.nn.functional.interpolate(small, size=(8, 8), mode="bilinear", align_corners=False)
    a, b = metrics.BoundaryIoU(2), metrics.BoundaryIoU(2)
    a.update(small, target)
    b.update(up, target)
    assert a.compute() == b.compute()  # logits smaller than the label: bilinearly upsampled first
    c, d = metrics.BoundaryIoU(2), metrics.BoundaryIoU(2)
    noisy = target.clone()
    noisy[0, 0, :] = 2  # label 2 is not a class of a 2-class metric: ignored like void
    c.update(exact, noisy)
    voided = target.clone()
    voided[0, 0, :] = 255
    d.update(exact, voided)
    assert c.compute() == d.compute()


def test_segmentation_flags_refuse_unknown_tasks_and_zero_megapixels(tmp_path):
    from util import load

    train = load("06_fcn", "train")
    with pytest.raises(SystemExit):
        train.get_args_parser().parse_args(["--synthetic-task", "nope"])
    assert train.get_args_parser().parse_args([]).synthetic_task == "shapes"
    with pytest.raises(UserError, match=r"^--max-megapixels must be positive, got 0.0$"):
        train.main(["--data", "synthetic", "--max-megapixels", "0", "--output-dir", str(tmp_path)])


def test_segmentation_checkpoints_store_the_normalisation(tmp_path):
    from common.segmentation import MEAN, STD
    from util import load

    load("06_fcn", "train").main(["--data", "synthetic", "--backbone", "light", "--synthetic-size", "4", "-b", "4",
                                  "--epochs", "1", "--image-size", "32", "--output-dir", str(tmp_path)])
    assert torch.load(tmp_path / "last.pth", weights_only=True)["preprocess"] == {"mean": list(MEAN), "std": list(STD)}


def test_synthetic_context_has_the_void_band_by_default():
    ds = SyntheticContext(4, image_size=96, split="val")
    assert all((ds.sample(i)[1] == 255).any() for i in range(4))  # void round objects, as in the shapes set
    assert not (SyntheticContext(4, image_size=96, split="val", void_band=False).sample(0)[1] == 255).any()


def test_provenance_has_the_load_average_and_minutes():
    line = experiment.provenance([], seconds=600)
    assert ", load average " in line and line.endswith("wall time 10.0 min")


@pytest.mark.parametrize("variants", ["abc", "a"])
def test_plot_labels_one_seed_once_and_writes_into_new_folders(tmp_path, monkeypatch, variants):
    import matplotlib.figure

    labels = []
    save = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, path, *a, **k: (
        labels.extend(t.get_text() for t in fig.axes[0].get_legend().get_texts()), save(fig, path, *a, **k))[1])
    rows = [{"variant": v, "seed": s, "miou": 0.1 * s, "seconds": 1.0} for v in variants for s in (0, 1)]
    path = experiment.plot(rows, "miou", "mIoU", tmp_path / "x" / "y" / "p.png", title="t")
    assert path.is_file() and labels == ["one seed", "mean ± sd"]


def test_state_dict_mismatch_says_when_every_tensor_fits():
    net = torch.nn.Linear(2, 2)
    assert state_dict_mismatch(net, net.state_dict()) == "the tensors fit; another value is wrong"


def test_overlay_default_opacity_is_half():
    image = Image.new("RGB", (2, 1), (0, 0, 0))
    mask = np.array([[0, 1]], dtype=np.uint8)
    out = np.asarray(seg_predict.overlay(image, mask))
    assert out[0, 0].tolist() == [0, 0, 0] and out[0, 1].tolist() == [64, 0, 0]  # half of class 1's (128, 0, 0)


def test_make_loaders_shuffles_training_by_seed_and_epoch_and_shards_across_ranks():
    """The train loader's DistributedSampler is what shuffles (also with one process): without it the data would come
    in file order every epoch. Its order follows --seed and the epoch; two ranks see disjoint halves."""
    from common.data import make_loaders

    data = torch.utils.data.TensorDataset(torch.arange(32))
    args = argparse.Namespace(batch_size=8, eval_batch_size=None, workers=0, seed=0)

    def order(seed: int, epoch: int = 0, rank: int = 0, world: int = 1) -> list[int]:
        rt = Runtime(device=torch.device("cpu"), rank=rank, world_size=world)
        train, _ = make_loaders(data, data, argparse.Namespace(**{**vars(args), "seed": seed}), rt,
                                collate_fn=lambda batch: torch.stack([b[0] for b in batch]))
        train.sampler.set_epoch(epoch)
        return torch.cat(list(train)).tolist()

    assert order(0) != list(range(32)) and sorted(order(0)) == list(range(32))  # shuffled, every item once
    assert order(0) == order(0) and order(0) != order(1) and order(0, epoch=1) != order(0)
    halves = [order(0, rank=r, world=2) for r in (0, 1)]
    assert len(halves[0]) == 16 and not set(halves[0]) & set(halves[1])


def test_working_size_of_a_one_pixel_wide_image_is_integers_within_the_limit():
    from common.segmentation import working_size

    size = working_size(1, 10_000_000, 4)  # the width is clamped at 1 px, so the height takes the whole limit
    assert size == (1, 4_000_000) and all(type(v) is int for v in size)
    assert working_size(10_000_000, 1, 4) == (4_000_000, 1)
    assert working_size(640, 480, 4) == (640, 480)


def test_synthetic_train_loader_follows_the_seed_in_its_images_and_its_order():
    from common.synthetic import SyntheticShapes
    from common.tensor_loader import TensorLoader

    rt = Runtime(device=torch.device("cpu"))
    train, *_ = classification.classification_loaders(loader_args(seed=3, synthetic_size=8), rt, 16)
    expected = SyntheticShapes(8, image_size=16, seed=3, split="train")  # the images of --seed 3, in the order of
    reference = TensorLoader(expected.data, expected.targets, 4, train=True, flip=True, seed=3,  # a loader of seed 3
                             mean=list(classification.IMAGENET_MEAN), std=list(classification.IMAGENET_STD))
    for (x, y), (ex, ey) in zip(train, reference):
        assert torch.equal(y, ey) and torch.equal(x, ex)


def test_imagefolder_errors_name_the_split_and_the_folders(tmp_path):
    from PIL import Image

    for split, names in (("train", ("a", "b")), ("val", ("a", "c"))):
        for name in names:
            (tmp_path / split / name).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(tmp_path / split / name / "x.png")
    with pytest.raises(UserError, match=r"train/ and val/ have different class folders \(\['a', 'b'\] vs \['a', 'c'\]\)$"):
        classification.load_imagefolder(tmp_path)
    (tmp_path / "val" / "c" / "x.png").rename(tmp_path / "val" / "b")  # now val/b is a file, and val/c is empty
    (tmp_path / "val" / "b").unlink()
    (tmp_path / "val" / "b").mkdir()
    (tmp_path / "val" / "b" / "x.png").write_text("not an image")
    (tmp_path / "val" / "c").rmdir()
    (tmp_path / "val" / "a" / "x.png").write_text("not an image either")
    with pytest.raises(UserError, match=r"/val: no readable images left$"):
        classification.load_imagefolder(tmp_path, skip_bad=True)


def test_a_failed_hymenoptera_download_says_how_to_run_offline(tmp_path, monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", offline)
    with pytest.raises(UserError, match=r"\(OSError: offline\?\); use --data synthetic to run offline$"):
        classification.fetch_hymenoptera(tmp_path / "data", True)
    assert not (tmp_path / "data").exists()


def test_one_loader_worker_is_already_kept_across_epochs():
    from common.data import make_loaders

    data = torch.utils.data.TensorDataset(torch.arange(8))
    rt = Runtime(device=torch.device("cpu"))
    for workers, persistent in ((0, False), (1, True)):
        args = argparse.Namespace(batch_size=4, eval_batch_size=None, workers=workers, seed=0)
        train, val = make_loaders(data, data, args, rt)
        assert train.persistent_workers is persistent and val.persistent_workers is persistent
        assert train.num_workers == workers and not train.pin_memory  # pinned memory only for CUDA


def test_make_loaders_drops_the_uneven_tail_per_rank_and_shards_val_without_repeats():
    from common.data import make_loaders

    data = torch.utils.data.TensorDataset(torch.arange(10))
    args = argparse.Namespace(batch_size=2, eval_batch_size=2, workers=0, seed=0)
    collate = lambda batch: torch.stack([b[0] for b in batch])  # noqa: E731
    for drop_last, per_rank in ((True, 3), (False, 4)):  # 10 images on 3 ranks: 3 each, or 4 with 2 repeated
        train, _ = make_loaders(data, data, args, Runtime(device=torch.device("cpu"), rank=0, world_size=3),
                                collate_fn=collate, drop_last=drop_last)
        assert len(train.sampler) == per_rank
    _, val = make_loaders(data, data, args, Runtime(device=torch.device("cpu"), rank=1, world_size=2), collate_fn=collate)
    assert torch.cat(list(val)).tolist() == [1, 3, 5, 7, 9]  # rank 1 of 2: every other image, none twice


def test_a_pickled_model_without_class_names_is_named(tmp_path):
    from common.predict import load_for_prediction

    torch.save(torch.nn.Linear(2, 2), tmp_path / "whole.pth")
    with pytest.raises(UserError, match=r"whole.pth: pickled model has no class_names attribute$"):
        load_for_prediction(tmp_path / "whole.pth", lambda *a, **k: None, unsafe_pickle=True)
