"""common/: device errors, atomic saves, weights_only refusal, shape-matched loading, metrics, the loop's NaN guard."""
import json
import math
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common import checkpoint, cli, engine, metrics, weights
from common.errors import UserError
from common.runtime import Runtime
from common.synthetic import SyntheticSegmentation, SyntheticShapes, write_imagefolder, write_voc


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_without_cuda_is_an_error_not_a_fallback():
    with pytest.raises(UserError, match="CUDA is not available"):
        cli.resolve_device("cuda")
    assert cli.resolve_device("auto").type == "cpu"


def test_bad_device_string():
    with pytest.raises(UserError, match="not a device"):
        cli.resolve_device("gpu0")


def test_atomic_save_keeps_previous_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.pth"
    checkpoint.save_checkpoint({"model": {"w": torch.ones(3)}}, path)
    original = path.read_bytes()

    def crash(obj, f, *a, **k):
        f.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save_checkpoint({"model": {"w": torch.zeros(3)}}, path)
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["last.pth"], "temp file left behind"


def test_weights_only_refuses_a_pickled_object(tmp_path):
    path = tmp_path / "method1.pth"
    torch.save(nn.Linear(2, 2), path)  # the notes' method 1: a whole pickled module
    with pytest.raises(UserError, match="pickled Python objects.*Linear"):
        checkpoint.load_file(path)
    assert isinstance(checkpoint.load_file(path, unsafe_pickle=True), nn.Linear)


@pytest.mark.parametrize("content, message", [(None, "no such file"), (b"not a zip", "is not a PyTorch file")])
def test_missing_and_corrupt_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "x.pth"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=message) as info:
        checkpoint.load_checkpoint(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_foreign_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "tensor.pth"
    torch.save(torch.ones(2), path)
    with pytest.raises(UserError, match="not a checkpoint of this repo"):
        checkpoint.load_checkpoint(path)


class Net(nn.Module):
    def __init__(self, classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.head = nn.Linear(4, classes)


def test_shape_matched_loading_reports_every_decision():
    source = Net(10).state_dict()
    source = {f"module.{k}": v for k, v in source.items()}  # as saved from DDP
    source["module.extra.weight"] = torch.ones(1)
    target = Net(3)
    report = weights.load_matching(target, source, log=None)
    assert report.mismatched == {"head.weight": ((10, 4), (3, 4)), "head.bias": ((10,), (3,))}
    assert report.unexpected == ["extra.weight"]
    assert report.missing == []
    assert "features.0.weight" in report.loaded and len(report.loaded) == 7  # conv w+b, bn w+b+mean+var+count
    assert torch.equal(target.features[0].weight, source["module.features.0.weight"])
    text = str(report)
    assert "head.weight: source [10, 4] vs model [3, 4]" in text


def test_shape_matched_loading_reports_missing_and_accepts_checkpoints():
    source = {"model": {"_orig_mod.features.0.weight": torch.zeros(4, 3, 3, 3)}}
    target = Net(3)
    report = weights.load_matching(target, source, log=None)
    assert report.loaded == ["features.0.weight"]
    assert "head.weight" in report.missing and "features.0.bias" in report.missing
    assert target.features[0].weight.abs().sum() == 0


def test_zero_matching_tensors_is_an_error():
    with pytest.raises(UserError, match="no parameter of the model matches"):
        weights.load_matching(Net(3), {"other.weight": torch.ones(2)}, log=None)


def test_matching_buffers_alone_is_an_error_not_a_load():
    """A BatchNorm's num_batches_tracked matches any BatchNorm of the same name: that alone must not count as loaded
    weights (issue 11: a MobileNetV1 checkpoint 'loaded 1 tensors' into a MobileNetV2 and trained a random backbone)."""
    source = {"features.1.num_batches_tracked": torch.tensor(7), "features.0.weight": torch.ones(8, 3, 3, 3)}
    with pytest.raises(UserError, match=r"no parameter of the model matches.*\(1 buffers did, 1 shape mismatches"):
        weights.load_matching(Net(3), source, log=None)


def test_load_report_counts_parameters_and_buffers_apart():
    source = Net(10).state_dict()  # head.weight / head.bias mismatch: 10 classes vs 3
    lines = []
    report = weights.load_matching(Net(3), source, log=lines.append)
    assert report.loaded_parameters == ["features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias"]
    assert report.loaded_buffers == ["features.1.running_mean", "features.1.running_var",
                                     "features.1.num_batches_tracked"]
    total = 4 * 27 + 4 + 4 + 4 + 3 * 4 + 3
    assert report.parameter_share == pytest.approx((4 * 27 + 12) / total)
    assert lines[0].splitlines()[0] == (f"loaded 4/6 parameter tensors ({100 * (4 * 27 + 12) / total:.1f}% of "
                                        "parameters) and 3 buffers; shape-mismatched 2, missing 0, unexpected 0")
    assert report.as_dict()["parameter_share"] == report.parameter_share and report.as_dict()["parameters"] == 6


def test_weights_source_errors_name_the_flag(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"^--weights-backbone nowhere\.pth: no such file, and not a torchvision"):
        weights.resolve_state_dict("nowhere.pth", flag="--weights-backbone")
    with pytest.raises(UserError, match=r"^--weights-backbone 'Nope_Weights.X' is neither a file nor"):
        weights.resolve_state_dict("Nope_Weights.X", flag="--weights-backbone")
    named = tmp_path / "ResNet18_Weights.IMAGENET1K_V1"  # a file wins over the weights name it looks like
    torch.save({"w": torch.ones(1)}, named)
    assert weights.resolve_state_dict(str(named))["w"].item() == 1
    torch.save([torch.ones(1)], tmp_path / "list.pth")
    with pytest.raises(UserError, match="^--weights: the weights file holds a list"):
        weights.resolve_state_dict(tmp_path / "list.pth")


def test_sub_state_dict_takes_a_prefix_or_everything():
    state = {"backbone.conv1.weight": torch.ones(1), "head.0.weight": torch.zeros(1)}
    assert list(weights.sub_state_dict(state, "backbone.")) == ["conv1.weight"]
    assert list(weights.sub_state_dict({"conv1.weight": torch.ones(1)}, "backbone.")) == ["conv1.weight"]


def test_freeze_by_prefix():
    model = Net(3)
    assert weights.freeze(model, ["features."]) == 4
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["head.weight", "head.bias"]
    with pytest.raises(UserError, match="nothing to freeze"):
        weights.freeze(model, ["backbone."])


def test_frozen_batchnorm_keeps_its_statistics_and_unfreeze_restores_training():
    """One meaning of 'freeze' for 05, 08 and 09: frozen BatchNorm layers stay in eval mode through model.train()."""
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))
    weights.freeze(model, ["0.", "1."])
    model.train()
    assert not model[1].training and model[3].training and model.training
    before = [model[i].running_mean.clone() for i in (1, 3)]
    model(torch.randn(2, 3, 5, 5) + 3)
    assert torch.equal(model[1].running_mean, before[0]) and not torch.equal(model[3].running_mean, before[1])
    weights.unfreeze(model)
    model.train()
    assert model[1].training and all(p.requires_grad for p in model.parameters())
    model(torch.randn(2, 3, 5, 5) + 3)
    assert not torch.equal(model[1].running_mean, before[0])


def test_confusion_matrix_against_hand_computed_example():
    # labels:      predictions:   (255 = void, ignored)
    # 0 0 1        0 1 1
    # 1 2 255      1 1 0
    target = torch.tensor([[[0, 0, 1], [1, 2, 255]]])
    pred = torch.tensor([[[0, 1, 1], [1, 1, 0]]])
    cm = metrics.ConfusionMatrix(num_classes=4)
    cm.update(pred, target)
    assert cm.matrix().tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    result = cm.compute()
    assert result["pixel_accuracy"] == pytest.approx(3 / 5)
    # IoU: class 0: 1/(1+1+0)=0.5, class 1: 2/(2+2)=0.5, class 2: 0/1=0, class 3: absent everywhere -> nan (skipped)
    assert result["iou"][:3] == pytest.approx([0.5, 0.5, 0.0]) and math.isnan(result["iou"][3])
    assert result["miou"] == pytest.approx(1 / 3)


def test_confusion_matrix_upsamples_logits_to_label_size():
    logits = torch.zeros(1, 2, 2, 2)
    logits[0, 1] = 1.0  # class 1 everywhere, at half resolution
    cm = metrics.ConfusionMatrix(num_classes=2)
    cm.update(logits, torch.ones(1, 4, 4, dtype=torch.long))
    assert cm.matrix().sum() == 16 and cm.compute()["pixel_accuracy"] == 1.0


def test_topk_accuracy():
    output = torch.tensor([[0.1, 0.5, 0.4], [0.8, 0.15, 0.05], [0.2, 0.3, 0.5]])
    target = torch.tensor([2, 0, 0])
    acc = metrics.Accuracy(topk=(1, 2))
    acc.update(output, target)
    result = acc.compute()
    assert result["accuracy"] == pytest.approx(1 / 3)
    assert result["top2"] == pytest.approx(2 / 3)


def test_nan_loss_stops_the_run_naming_epoch_and_step():
    model = nn.Linear(4, 2)
    calls = {"n": 0}

    def criterion(output, target):
        calls["n"] += 1
        loss = nn.functional.cross_entropy(output, target)
        return loss * float("nan") if calls["n"] == 3 else loss

    loader = [(torch.randn(2, 4), torch.tensor([0, 1]))] * 5
    rt = Runtime(device=torch.device("cpu"))
    with pytest.raises(FloatingPointError, match=r"epoch 2, step 3 \(global step 8\)"):
        engine.train_one_epoch(model, criterion, torch.optim.SGD(model.parameters(), lr=0.1), loader, rt=rt,
                               epoch=1, scaler=torch.amp.GradScaler("cpu", enabled=False), print_freq=4,
                               global_step=5)


def test_synthetic_sets_are_deterministic_per_index():
    a, b = SyntheticShapes(20, seed=3), SyntheticShapes(30, seed=3)
    assert (a.data == b.data[:20]).all() and a.targets == b.targets[:20]
    assert not (SyntheticShapes(20, seed=4).data == a.data).all()
    assert sorted(set(a.targets)) == list(range(10)) and a.data.shape == (20, 32, 32, 3)
    seg = SyntheticSegmentation(5, image_size=48)
    img, mask = seg.sample(2)
    img2, mask2 = SyntheticSegmentation(3, image_size=48).sample(2)
    assert (img == img2).all() and (mask == mask2).all()
    values = set(mask.ravel().tolist())
    assert 255 in values and 0 in values and values <= {0, 1, 2, 3, 4, 5, 255}


def test_void_band_surrounds_objects_like_voc():
    _, mask = SyntheticSegmentation(1, image_size=64).sample(0)
    objects = (mask != 0) & (mask != 255)
    # no object pixel touches plain background: each of its 4-neighbours is object or void (255)
    padded = np.pad(objects, 1)
    near = (padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]) & ~objects
    assert near.any() and (mask[near] == 255).all()


def test_writers_produce_real_layouts(tmp_path):
    import torchvision

    root = write_imagefolder(SyntheticShapes(12, num_classes=3), tmp_path / "folder")
    folder = torchvision.datasets.ImageFolder(root)
    assert folder.classes == ["disk", "square", "triangle"] and len(folder) == 12
    voc = write_voc(tmp_path / "voc", {"train": SyntheticSegmentation(3), "val": SyntheticSegmentation(2, split="val")})
    ds = torchvision.datasets.VOCSegmentation(tmp_path / "voc", year="2012", image_set="val")
    img, mask = ds[1]
    assert len(ds) == 2 and mask.mode == "P" and img.size == mask.size == (64, 64)
    assert (voc / "ImageSets" / "Segmentation" / "train.txt").read_text().split() == [f"train_{i:05d}" for i in range(3)]


def test_accuracy_accumulates_over_batches_of_different_sizes():
    """The notes' total_accuracy / test_data_size: every batch counts by its size, the last short one included."""
    acc = metrics.Accuracy(topk=(1, 3))
    scores = torch.tensor([[4.0, 3, 2, 1], [3, 4, 2, 1], [4, 3, 2, 1]])
    acc.update(scores, torch.tensor([0, 1, 3]))                   # top-1: 2 of 3; top-3: 2 of 3 (class 3 is 4th)
    acc.update(torch.tensor([[1.0, 2, 3, 4]]), torch.tensor([1]))  # top-1: 0 of 1; top-3: 1 of 1
    result = acc.compute()
    assert result["accuracy"] == pytest.approx(2 / 4) and result["top3"] == pytest.approx(3 / 4)
    acc.reset()
    assert math.isnan(acc.compute()["accuracy"])
    acc.update(torch.tensor([[0.2, 0.8]]), torch.tensor([1]))
    assert acc.compute()["accuracy"] == 1.0  # reset forgot the earlier batches


def test_topk_larger_than_the_class_count_is_clamped():
    acc = metrics.Accuracy(topk=(1, 5))
    acc.update(torch.tensor([[0.1, 0.9], [0.7, 0.3]]), torch.tensor([0, 0]))
    assert acc.compute() == {"accuracy": 0.5, "top5": 1.0}


def test_confusion_matrix_accumulates_updates_and_ignores_void():
    cm = metrics.ConfusionMatrix(num_classes=3)
    cm.update(torch.tensor([[0, 1]]), torch.tensor([[0, 1]]))
    cm.update(torch.tensor([[2, 2, 1]]), torch.tensor([[2, 255, 0]]))
    assert cm.matrix().tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    result = cm.compute()
    assert result["pixel_accuracy"] == pytest.approx(3 / 4)
    assert result["iou"] == pytest.approx([1 / 2, 1 / 2, 1.0]) and result["miou"] == pytest.approx(2 / 3)
    cm.reset()
    assert math.isnan(cm.compute()["miou"]) and cm.compute()["iou"][0] != cm.compute()["iou"][0]


@pytest.fixture
def one_process_group(tmp_path):
    """A real (gloo, world size 1) process group, so the metrics' DDP reductions run for real in-process."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_metrics_reduce_through_a_process_group(one_process_group):
    acc = metrics.Accuracy(topk=(1, 2))
    acc.reduce()  # nothing seen yet: a no-op, not a crash
    acc.update(torch.tensor([[0.6, 0.3, 0.1], [0.1, 0.3, 0.6], [0.3, 0.6, 0.1]]), torch.tensor([0, 1, 2]))
    acc.reduce()
    assert acc.count == 3 and acc.compute() == {"accuracy": pytest.approx(1 / 3), "top2": pytest.approx(2 / 3)}
    cm = metrics.ConfusionMatrix(2)
    cm.reduce()
    cm.update(torch.tensor([[0, 1, 1]]), torch.tensor([[0, 1, 0]]))
    cm.reduce()
    assert cm.matrix().tolist() == [[1, 1], [0, 1]]


def test_empty_metrics_report_nan_under_their_own_keys():
    assert {k: math.isnan(v) for k, v in metrics.Accuracy(topk=(1, 5)).compute().items()} == {"accuracy": True,
                                                                                          "top5": True}
    empty = metrics.ConfusionMatrix(3).compute()
    assert sorted(empty) == ["iou", "miou", "pixel_accuracy"] and len(empty["iou"]) == 3
    assert all(math.isnan(v) for v in [empty["miou"], empty["pixel_accuracy"], *empty["iou"]])


def test_one_labelled_pixel_and_labels_outside_the_classes():
    cm = metrics.ConfusionMatrix(3)
    cm.update(torch.tensor([[2, 0, 1]]), torch.tensor([[2, 3, 255]]))  # 3 and 255 are no class: not counted
    result = cm.compute()
    assert cm.matrix().sum() == 1 and result["pixel_accuracy"] == 1.0 and result["iou"][2] == 1.0


def test_confusion_matrix_upsamples_logits_bilinearly_without_corner_alignment():
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 3, 4)
    target = torch.randint(0, 3, (1, 7, 9))
    cm = metrics.ConfusionMatrix(3)
    cm.update(logits, target)
    expected = metrics.ConfusionMatrix(3)
    expected.update(F.interpolate(logits, size=(7, 9), mode="bilinear", align_corners=False).argmax(1), target)
    corners = metrics.ConfusionMatrix(3)
    corners.update(F.interpolate(logits, size=(7, 9), mode="bilinear", align_corners=True).argmax(1), target)
    assert torch.equal(cm.matrix(), expected.matrix()) and not torch.equal(cm.matrix(), corners.matrix())


@pytest.mark.parametrize("content, message", [
    (b"", "is empty (0 bytes), not a PyTorch file"),
    (b"hello world\n", "is not a PyTorch file (neither a zip archive nor a pickle; it starts with b'hell')"),  # KeyError: 101 in torch
    (b"\x89PNG\r\n", "is not a PyTorch file (neither a zip archive nor a pickle; it starts with b'\\x89PNG')"),
    (pickle.dumps({"a": 1}, protocol=2), "is not a readable PyTorch file (Invalid magic number; corrupt file?)"),
    (b"\x80\x02}q", "is not a readable PyTorch file (index out of range)"),
])
def test_unreadable_files_say_why(tmp_path, content, message):
    path = tmp_path / "x.pth"
    path.write_bytes(content)
    with pytest.raises(UserError) as info:
        checkpoint.load_file(path)
    assert str(info.value) == f"{path} {message}"


def test_a_truncated_checkpoint_is_named_damaged_and_a_folder_is_not_missing(tmp_path):
    checkpoint.save_checkpoint({"model": {"w": torch.randn(64, 64)}}, tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=r"^\S+cut.pth is damaged or truncated \(.+\)$"):
        checkpoint.load_file(tmp_path / "cut.pth")
    with pytest.raises(UserError) as info:
        checkpoint.load_file(tmp_path)
    assert str(info.value) == f"{tmp_path} is a folder, not a checkpoint file"


def test_a_hostile_pickle_names_the_global_it_would_call(tmp_path):
    """torch 2.6+ words it "Trying to load unsupported GLOBAL posix.system whose module posix is blocked"."""
    class Hostile:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"model": Hostile()}, tmp_path / "h.pth")
    with pytest.raises(UserError, match=rf"^{tmp_path / 'h.pth'} contains pickled Python objects \((posix|os|nt)\.system\)"):
        checkpoint.load_file(tmp_path / "h.pth")


def test_a_long_loader_message_is_cut_to_its_first_line_and_120_characters(tmp_path, monkeypatch):
    path = tmp_path / "x.pth"
    path.write_bytes(b"\x80\x02")

    def fail(*args, **kwargs):
        raise RuntimeError("  " + "y" * 130 + "\nsecond line")

    monkeypatch.setattr(torch, "load", fail)
    with pytest.raises(UserError) as info:
        checkpoint.load_file(path)
    assert str(info.value) == f"{path} is not a readable PyTorch file ({'y' * 120})"


def test_pickled_object_message_says_what_to_do(tmp_path):
    torch.save({"p": __import__("pathlib").Path("x")}, tmp_path / "p.pth")
    with pytest.raises(UserError) as info:
        checkpoint.load_file(tmp_path / "p.pth")
    assert str(info.value) == (f"{tmp_path / 'p.pth'} contains pickled Python objects (pathlib.PosixPath), refused by "
                               "torch.load(weights_only=True); load only files you trust, with --unsafe-pickle where a "
                               "script offers it")


def test_a_checkpoint_written_on_a_gpu_loads_on_the_cpu(tmp_path, monkeypatch):
    """Storages tagged cuda:0, as torch.save writes them on a GPU machine: load_file maps them to the CPU."""
    import torch.serialization

    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save({"w": torch.ones(2)}, tmp_path / "gpu.pth")
    loaded = checkpoint.load_file(tmp_path / "gpu.pth")
    assert loaded["w"].device.type == "cpu" and loaded["w"].tolist() == [1.0, 1.0]


def test_save_writes_a_hidden_temp_file_beside_the_target(tmp_path, monkeypatch):
    """Atomic only if the temp file is in the same folder (os.replace within one file system); hidden, so a folder
    listing never shows a half-written checkpoint as one."""
    seen = []
    real_save = torch.save

    def spy(obj, f, *args, **kwargs):
        seen.extend(p.name for p in tmp_path.iterdir())
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", spy)
    checkpoint.save_checkpoint({"w": torch.ones(1)}, tmp_path / "last.pth")
    assert len(seen) == 1 and re.fullmatch(r"\.last\.pth\..+\.tmp", seen[0])
    assert [p.name for p in tmp_path.iterdir()] == ["last.pth"]


def test_unwrap_finds_the_model_inside_compile_and_ddp(one_process_group):
    model = nn.Linear(2, 2)
    assert checkpoint.unwrap(torch.compile(model)) is model
    ddp = nn.parallel.DistributedDataParallel(model)
    assert checkpoint.unwrap(ddp) is model and checkpoint.unwrap(torch.compile(ddp)) is model
    assert checkpoint.unwrap(model) is model


def test_model_from_checkpoint_errors_and_defaults():
    def build(name, num_classes, **kwargs):
        assert name == "net"
        return nn.Linear(2, num_classes, **kwargs)

    state = nn.Linear(2, 3).state_dict()
    model = checkpoint.model_from_checkpoint({"model": state, "model_name": "net", "class_names": list("abc")}, build)
    assert not model.training and torch.equal(model.weight, state["weight"])  # no model_kwargs: none passed
    with pytest.raises(UserError, match="^checkpoint has no 'class_names'; it was not written by this repo's train.py$"):
        checkpoint.model_from_checkpoint({"model": state, "model_name": "net"}, build)
    with pytest.raises(UserError, match=r"^checkpoint does not fit model 'net' of this folder \(Error\(s\) in loading"):
        checkpoint.model_from_checkpoint({"model": state, "model_name": "net", "class_names": list("ab")}, build)


def test_mult_adds_of_conv_transposed_conv_and_linear_by_hand():
    from common.complexity import count_params_and_macs

    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ConvTranspose2d(4, 6, 4, stride=2, padding=1, groups=2),
                          nn.ConvTranspose2d(6, 2, 2, stride=2), nn.Flatten(), nn.Linear(2 * 20 * 24, 5))
    cost = count_params_and_macs(model, (5, 6))
    conv = 5 * 6 * 4 * 3 * 9                   # every output pixel: a dot product over 3·3·3 inputs
    up1 = (4 * 5 * 6) * 6 // 2 * 16            # every input pixel scatters a 4×4 kernel into 6/2 channels
    up2 = (6 * 10 * 12) * 2 * 4
    assert cost == {"macs": conv + up1 + up2 + 2 * 20 * 24 * 5, "params": sum(p.numel() for p in model.parameters())}
    square = nn.Conv2d(3, 1, 1)
    assert count_params_and_macs(square)["macs"] == 224 * 224 * 3  # default: one 224×224 RGB image



def test_torchvision_weights_offline_and_unknown_names(monkeypatch):
    import torchvision.models

    class Entry:
        def get_state_dict(self, progress):
            calls.append(progress)
            raise OSError("no network")

    calls = []
    monkeypatch.setattr(torchvision.models, "get_weight", lambda name: Entry())
    with pytest.raises(UserError) as info:
        weights.torchvision_state_dict("ResNet18_Weights.IMAGENET1K_V1")
    assert calls == [False]  # no download progress bar in logs
    assert str(info.value) == ("--weights: could not download ResNet18_Weights.IMAGENET1K_V1 (OSError: offline?); "
                               "download it once online, or pass a local file (torch.save(model.state_dict(), path))")

    def unknown(name):
        raise ValueError(name)

    monkeypatch.setattr(torchvision.models, "get_weight", unknown)
    with pytest.raises(UserError) as info:
        weights.torchvision_state_dict("Nope_Weights.X")
    assert str(info.value) == ("--weights 'Nope_Weights.X' is neither a file nor a torchvision weights name "
                               "(e.g. MobileNet_V2_Weights.IMAGENET1K_V1)")


def test_load_report_as_dict_is_complete():
    report = weights.load_matching(Net(3), Net(10).state_dict(), log=None)
    as_dict = report.as_dict()
    assert sorted(as_dict) == ["loaded", "loaded_parameters", "mismatched", "missing", "parameter_share", "parameters",
                               "unexpected"]
    assert as_dict["loaded_parameters"] == 4 and as_dict["mismatched"]["head.bias"] == [[10], [3]]
    assert json.loads(json.dumps(as_dict)) == as_dict  # plain values: written as weights_report.json


def test_a_full_disk_is_one_line_and_leaves_the_previous_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    """torch 2.14 reports ENOSPC as `RuntimeError: [enforce fail ...]` chained to the OSError: both are recognised."""
    import errno

    path = tmp_path / "last.pth"
    checkpoint.save_checkpoint({"epoch": 1}, path)
    real_save = torch.save

    def full_disk(obj, f, wrapped):
        real_save(obj, f)  # a partial file exists when the disk fills
        error = OSError(errno.ENOSPC, "No space left on device")
        if not wrapped:
            raise error
        raise RuntimeError("[enforce fail at inline_container.cc:783] . PytorchStreamWriter failed writing file") from error

    for wrapped in (False, True):
        monkeypatch.setattr(checkpoint.torch, "save", lambda obj, f, w=wrapped: full_disk(obj, f, w))
        with pytest.raises(UserError) as info:
            checkpoint.save_checkpoint({"epoch": 2}, path)
        assert str(info.value) == f"no space left on device while writing {path}; the previous checkpoint is intact"
        assert torch.load(path, weights_only=True) == {"epoch": 1} and sorted(tmp_path.iterdir()) == [path]
    with pytest.raises(UserError, match=r"best.pth; nothing was written$"):
        checkpoint.save_checkpoint({"epoch": 2}, tmp_path / "best.pth")
    monkeypatch.setattr(checkpoint.torch, "save", lambda obj, f: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError, match="I/O error"):  # any other failure is not dressed up as a full disk
        checkpoint.save_checkpoint({"epoch": 2}, path)
    assert sorted(tmp_path.iterdir()) == [path]


def test_ctrl_c_during_a_save_is_held_until_the_file_is_complete(tmp_path, monkeypatch):
    import signal

    real_save = torch.save

    def interrupted_save(obj, f):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C arrives mid-write
        real_save(obj, f)

    monkeypatch.setattr(checkpoint.torch, "save", interrupted_save)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own, whoever runs the tests
    try:
        with pytest.raises(KeyboardInterrupt):
            checkpoint.save_checkpoint({"epoch": 3}, tmp_path / "last.pth")
        assert torch.load(tmp_path / "last.pth", weights_only=True) == {"epoch": 3}  # complete, then the interrupt
        assert sorted(tmp_path.iterdir()) == [tmp_path / "last.pth"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is given back
        # where SIGINT is ignored (nohup, mutmut's workers), a Ctrl-C during a save stays ignored: no KeyboardInterrupt
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        checkpoint.save_checkpoint({"epoch": 4}, tmp_path / "last.pth")
        assert torch.load(tmp_path / "last.pth", weights_only=True) == {"epoch": 4}
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_stale_temp_files_of_killed_saves_are_removed_and_nothing_else(tmp_path):
    stale = [tmp_path / ".last.pth.k3j_x9a2.tmp", tmp_path / ".best.pth.abcdefgh.tmp", tmp_path / ".m.pt.0123456_.tmp"]
    kept = [tmp_path / ".last.pth.short.tmp", tmp_path / ".last.pth.abcdefg.tmp", tmp_path / "last.pth",
            tmp_path / ".notes.txt.abcdefgh.tmp", tmp_path / "x.last.pth.abcdefgh.tmp", tmp_path / ".last.pth.ABCDEFGH.tmp"]
    for path in stale + kept:
        path.write_bytes(b"x")
    assert checkpoint.remove_stale_temp_files(tmp_path) == sorted(stale)
    assert sorted(tmp_path.iterdir()) == sorted(kept)
    fd, name = __import__("tempfile").mkstemp(dir=tmp_path, prefix=".last.pth.", suffix=".tmp")  # the real pattern
    os.close(fd)
    assert checkpoint.remove_stale_temp_files(tmp_path) == [Path(name)]


def square(rows: range, cols: range, size: int = 6) -> torch.Tensor:
    mask = torch.zeros(size, size, dtype=torch.long)
    mask[rows.start:rows.stop, cols.start:cols.stop] = 1
    return mask


def test_boundary_iou_by_hand():
    """Label: a 4×4 square at rows/cols 1–4 of a 6×6 image; prediction: the same square one column right (cols 2–5,
    touching the image border, which is no contour). Width 1 (the 3×3 neighbourhood):
    class 1: label band 12 px (16 − 4 interior), prediction band 10 px (its interior rows 2–3 × cols 3–5 reaches the
    border), shared rows 1 and 4 × cols 2–4 = 6 → 6 / (12 + 10 − 6) = 0.375;
    class 0: every one of the 20 label-background pixels touches the square; the predicted background's column 0 does
    not touch the predicted square (6 px interior), so its band is 14 px, 10 of them label background → 10 / 24."""
    target, pred = square(range(1, 5), range(1, 5))[None], square(range(1, 5), range(2, 6))[None]
    metric = metrics.BoundaryIoU(2, width=1)
    metric.update(pred, target)
    result = metric.compute()
    assert result["boundary_iou_per_class"] == pytest.approx([10 / 24, 6 / 16])
    assert result["boundary_iou"] == pytest.approx((10 / 24 + 6 / 16) / 2)
    metric.reset()
    metric.update(target, target)
    assert metric.compute()["boundary_iou"] == 1.0
    assert metrics.BoundaryIoU(2).compute()["boundary_iou"] != metrics.BoundaryIoU(2).compute()["boundary_iou"]  # nan


def brute_force_band(mask: np.ndarray, width: int) -> np.ndarray:
    """The definition, pixel by pixel: in the mask, and some in-image pixel within Chebyshev distance `width` is not."""
    h, w = mask.shape
    band = np.zeros_like(mask)
    for y in range(h):
        for x in range(w):
            window = mask[max(0, y - width):y + width + 1, max(0, x - width):x + width + 1]
            band[y, x] = mask[y, x] and not window.all()
    return band


@pytest.mark.parametrize("width", [1, 2, 3])
def test_boundary_iou_matches_the_definition_on_random_maps_with_void(width):
    g = torch.Generator().manual_seed(width)
    target = F.interpolate(torch.randint(0, 3, (2, 1, 4, 5), generator=g).float(), size=(17, 19)).long()[:, 0]
    target[:, 3:5, 6:9] = 255  # void: counts for nobody
    pred = F.interpolate(torch.randint(0, 3, (2, 1, 3, 6), generator=g).float(), size=(17, 19)).long()[:, 0]
    logits = F.one_hot(pred, 3).permute(0, 3, 1, 2).float()
    metric = metrics.BoundaryIoU(3, width=width)
    metric.update(logits[:1], target[:1])
    metric.update(logits[1:], target[1:])  # accumulates over batches
    inter, union = np.zeros(3), np.zeros(3)
    for t, p in zip(target.numpy(), pred.numpy()):
        valid = t != 255
        for c in range(3):
            a, b = brute_force_band(t == c, width) & valid, brute_force_band(p == c, width) & valid
            inter[c] += (a & b).sum()
            union[c] += (a | b).sum()
    assert metric.compute()["boundary_iou_per_class"] == pytest.approx((inter / union).tolist())


def test_metric_set_merges_and_takes_the_first_primary():
    both = metrics.MetricSet(metrics.ConfusionMatrix(2), metrics.BoundaryIoU(2, width=1))
    target = square(range(1, 5), range(1, 5))[None]
    both.update(square(range(1, 5), range(2, 6))[None], target)
    both.reduce()
    result = both.compute()
    assert both.primary == "miou" and result["boundary_iou"] == pytest.approx((10 / 24 + 6 / 16) / 2)
    assert result["miou"] == pytest.approx((16 / 24 + 12 / 20) / 2)  # class 0: 16 of 24; class 1: 12 of 20
    both.reset()
    assert math.isnan(both.compute()["miou"]) and math.isnan(both.compute()["boundary_iou"])


def test_confusion_matrix_ignores_every_label_outside_the_classes():
    """The docstring's rule: 255 and anything else >= num_classes does not count (label == num_classes included)."""
    cm = metrics.ConfusionMatrix(2)
    target = torch.tensor([[[0, 1, 2, 255]]])
    cm.update(torch.tensor([[[0, 1, 0, 0]]]), target)
    assert cm.matrix().tolist() == [[1, 0], [0, 1]] and cm.compute()["pixel_accuracy"] == 1.0


def test_voc_palette_is_the_devkit_colour_map():
    """VOCdevkit's colours: background black, aeroplane (128, 0, 0), person (192, 128, 128), tvmonitor (0, 64, 128),
    void 255 cream (224, 224, 192); every one of the 21 classes and 255 checked."""
    from common.palette import to_palette_image, voc_palette

    voc = [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128), (0, 128, 128),
           (128, 128, 128), (64, 0, 0), (192, 0, 0), (64, 128, 0), (192, 128, 0), (64, 0, 128), (192, 0, 128),
           (64, 128, 128), (192, 128, 128), (0, 64, 0), (128, 64, 0), (0, 192, 0), (128, 192, 0), (0, 64, 128)]
    palette = voc_palette()
    assert len(palette) == 768
    assert [tuple(palette[3 * k:3 * k + 3]) for k in range(21)] == voc and tuple(palette[-3:]) == (224, 224, 192)
    image = to_palette_image(np.array([[0, 15, 255]], dtype=np.int64))
    assert image.mode == "P" and np.asarray(image).tolist() == [[0, 15, 255]]
    assert image.convert("RGB").getpixel((1, 0)) == (192, 128, 128)


def test_strip_prefixes_removes_nested_wrappers_in_any_order():
    """A compiled DDP model saves `module._orig_mod.x` (or `_orig_mod.module.x`): every wrapper prefix goes."""
    state = {"module._orig_mod.w": 1, "_orig_mod.module.module.b": 2, "_orig_mod.c": 3, "plain": 4}
    assert weights.strip_prefixes(state) == {"w": 1, "b": 2, "c": 3, "plain": 4}


def test_load_matching_names_the_weights_flag_by_default(tmp_path):
    with pytest.raises(UserError) as info:
        weights.load_matching(nn.Linear(2, 2), str(tmp_path / "nowhere.pth"), log=None)
    assert str(info.value) == (f"--weights {tmp_path / 'nowhere.pth'}: no such file, and not a torchvision weights "
                               "name (e.g. ResNet18_Weights.IMAGENET1K_V1)")
    torch.save({"model": {}}, tmp_path / "empty.pth")
    with pytest.raises(UserError) as info:
        weights.load_matching(nn.Linear(2, 2), str(tmp_path / "empty.pth"), log=None, flag="--weights-backbone")
    assert str(info.value) == "--weights-backbone: the weights hold no tensors"
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(UserError) as info:
        weights.load_matching(nn.Linear(2, 2), str(tmp_path / "list.pth"), log=None)
    assert str(info.value) == "--weights: the weights file holds a list, not a state_dict or checkpoint"


def test_class_confusion_counts_top1_predictions_and_per_class_recall():
    from common.metrics import ClassConfusion, classification_metric

    m = ClassConfusion(3)
    logits = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0], [5.0, 0, 0], [0, 5.0, 0]])
    m.update(logits[:3], torch.tensor([0, 1, 1]))  # two batches: counts add up
    m.update(logits[3:], torch.tensor([1, 1]))
    # labels 0: predicted 0; label 1 (four images): predicted 1, 2, 0, 1; label 2: no images
    out = m.compute()
    assert out["confusion"] == [[1, 0, 0], [1, 2, 1], [0, 0, 0]]
    assert out["recall"][:2] == [1.0, 0.5] and math.isnan(out["recall"][2])  # a class without images: nan, not 0
    assert out["mean_recall"] == pytest.approx(0.75)
    assert ClassConfusion(2).compute()["confusion"] == [] and math.isnan(ClassConfusion(2).compute()["mean_recall"])
    both = classification_metric(3)
    both.update(logits, torch.tensor([0, 1, 1, 1, 1]))
    result = both.compute()
    assert both.primary == "accuracy" and result["accuracy"] == pytest.approx(3 / 5) and result["recall"][1] == 0.5


def test_confusion_figure_shows_row_shares_with_counts_and_a_colour_bar():
    import matplotlib.pyplot as plt

    from common.plots import confusion_figure

    fig = confusion_figure([[3, 1], [1, 1]], ["cat", "dog"], "epoch 1")  # rows of 4 and 2 images
    heat, bar = fig.axes
    assert heat.images[0].get_array().tolist() == [[0.75, 0.25], [0.5, 0.5]]  # each label's row sums to 1
    assert heat.images[0].get_clim() == (0, 1)  # the colour scale is the share, 0 to 1, whatever the largest cell
    assert [t.get_text() for t in heat.texts] == ["3", "1", "1", "1"]  # the counts, row by row
    assert [t.get_text() for t in heat.get_xticklabels()] == ["cat", "dog"] and heat.get_xlabel() == "predicted class"
    assert heat.get_ylabel() == "label" and heat.get_title() == "epoch 1" and bar.get_ylabel() == "share of the label's images"
    plt.close(fig)
    fig = confusion_figure([[0] * 13] * 13, [str(i) for i in range(13)], "many")  # no counts above 12 classes; 0 rows
    assert not fig.axes[0].texts and fig.axes[0].images[0].get_array().sum() == 0
    plt.close(fig)


def test_no_augment_trains_on_the_eval_transform(tmp_path):
    """--no-augment (05, 09): no random crop or flip in training; the train set is transformed like the val set."""
    import argparse

    from common.classification import add_augment_arg, classification_loaders
    from common.runtime import Runtime
    from common.synthetic import SyntheticShapes, write_imagefolder

    parser = argparse.ArgumentParser()
    add_augment_arg(parser)
    assert parser.parse_args([]).augment is True and parser.parse_args(["--no-augment"]).augment is False
    rt = Runtime(device=torch.device("cpu"))
    base = dict(synthetic_size=8, batch_size=4, eval_batch_size=None, seed=0, workers=0, skip_bad=False,
                data_path=tmp_path, download=False)
    for augment in (True, False):
        args = argparse.Namespace(data="synthetic", augment=augment, **base)
        train_loader, _, _, _ = classification_loaders(args, rt, 16, synthetic_size=8)
        assert train_loader.flip is augment
    for split in ("train", "val"):
        write_imagefolder(SyntheticShapes(4, image_size=20, num_classes=2, split=split), tmp_path / split)
    for augment, random in ((True, True), (False, False)):
        args = argparse.Namespace(data="imagefolder", augment=augment, **base)
        train_loader, val_loader, _, _ = classification_loaders(args, rt, 16, synthetic_size=8)
        names = [type(t).__name__ for t in train_loader.dataset.transform.transforms]
        assert ("RandomResizedCrop" in names) is random and ("RandomHorizontalFlip" in names) is random
        if not random:
            assert train_loader.dataset.transform is val_loader.dataset.transform


def test_confusion_image_is_the_row_shares_in_blues_with_a_label_column():
    import matplotlib

    from common.plots import confusion_image

    image = confusion_image([[3, 1], [0, 4]], ["cat", "dog"], cell=20)
    left = 8 + 7 * 3  # room for the longest name
    assert image.shape == (18 + 2 * 20, left + 2 * 20, 3) and image.dtype == np.uint8
    blues = lambda share: (np.asarray(matplotlib.colormaps["Blues"](share)[:3]) * 255).astype(np.uint8)  # noqa: E731
    assert image[18 + 1, left + 1].tolist() == blues(0.75).tolist()  # row cat, column cat: 3 of 4
    assert image[18 + 20 + 1, left + 1].tolist() == blues(0.0).tolist()  # row dog, column cat: 0 of 4
    assert image[18 + 20 + 1, left + 20 + 1].tolist() == blues(1.0).tolist()


def test_a_torchvision_weights_name_must_be_the_models_own():
    from common.weights import check_weights_fit

    check_weights_fit("ResNet18_Weights.IMAGENET1K_V1", "resnet18")
    check_weights_fit("no/such/file.pth", "resnet18")  # a path: checked when it is loaded
    check_weights_fit(None, "tudui")
    with pytest.raises(UserError, match=r"^--weights VGG16_Weights.IMAGENET1K_V1 does not fit --model resnet18 "
                                        r"\(use ResNet18_Weights.IMAGENET1K_V1\)$"):
        check_weights_fit("VGG16_Weights.IMAGENET1K_V1", "resnet18")
    with pytest.raises(UserError, match=r"^--weights ResNet18_Weights.IMAGENET1K_V1 does not fit --model tudui \(it "
                                        r"has no torchvision weights\)$"):
        check_weights_fit("ResNet18_Weights.IMAGENET1K_V1", "tudui")


def test_init_distributed_joins_torchruns_group_with_gloo_on_a_cpu(monkeypatch):
    """In-process, as torchrun would start one rank: RANK/WORLD_SIZE/LOCAL_RANK and the rendezvous address in the
    environment. (The torchrun tests run in subprocesses, which mutation testing cannot see.)"""
    import socket

    import torch.distributed as dist

    from common import distributed

    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert distributed.init_distributed(torch.device("cpu")) == (0, 1, torch.device("cpu"))  # no torchrun: alone
    assert not dist.is_initialized() and not distributed.is_dist()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(port)}.items():
        monkeypatch.setenv(key, value)
    try:
        assert distributed.init_distributed(torch.device("cpu")) == (0, 1, torch.device("cpu"))
        assert dist.is_initialized() and dist.get_backend() == "gloo" and dist.get_world_size() == 1
        assert (distributed.is_dist(), distributed.rank(), distributed.world_size()) == (True, 0, 1)
        assert distributed.init_distributed(torch.device("cpu")) == (0, 1, torch.device("cpu"))  # joined once only
        total = torch.tensor([2.0, 3.0])
        assert distributed.all_reduce_sum_(total) is total and total.tolist() == [2.0, 3.0]
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
