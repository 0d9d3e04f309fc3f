"""08_transfer: the backbone/head split, every method's step, frozen parameters, the feature cache, 冻结训练 phases with
resume across the switch, the weights sources and their report, ImageFolder data, predict.py, bad input, and compare.py's
shots experiment (the shifted target, the k-shot subsets, the equal budget, the README block)."""
import json
import pathlib
import shutil
import subprocess
import sys
import urllib.error
from contextlib import nullcontext

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from common.errors import UserError
from common import feature_cache
from common.classification import IMAGENET_MEAN, IMAGENET_STD
from common.synthetic import TRANSFER_TARGET, shapes_subset, write_imagefolder
from common.weights import load_matching
from util import ROOT, load

FAST = ["--shots", "4", "--val-per-class", "4", "-b", "8", "--eval-batch-size", "16", "--print-freq", "2",
        "--epochs", "1", "--limit-batches", "1"]


@pytest.fixture(scope="module")
def mod():
    return load("08_transfer", "model")


@pytest.fixture(scope="module")
def train():
    return load("08_transfer", "train")


@pytest.fixture(scope="module")
def source(train, tmp_path_factory):
    """A resnet18 source checkpoint: two steps of scratch training on the six source shapes."""
    out = tmp_path_factory.mktemp("source")
    train.main(["--synthetic-task", "source", "--method", "scratch", "--synthetic-size", "48", "-b", "16",
                "--epochs", "1", "--limit-batches", "2", "--output-dir", str(out)])
    return out / "last.pth"


def prefixes(mod, name, k):
    return tuple(p for stage in mod.STAGES[name][:k] for p in stage)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "vgg16", "tudui"])
def test_backbone_head_split(mod, name):
    torch.manual_seed(0)
    model = mod.build_model(name, num_classes=3).eval()
    size = 32 if name == "tudui" else 64  # 64: a 2×2 final map, so a missing global pool shows (at 32 it is 1×1)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        vectors = mod.feature_extractor(model, name)(x)
        assert vectors.shape == (2, {"resnet18": 512, "mobilenet_v2": 1280, "vgg16": 25088, "tudui": 1024}[name])
        torch.testing.assert_close(mod.HeadOnly(model, name)(vectors), model(x))
    assert list(mod.HeadOnly(model, name).state_dict()) == list(model.state_dict())  # checkpoint = whole model
    groups = [*mod.STAGES[name], tuple(f"{h}." for h in mod.HEAD[name])]
    owners = [[i for i, g in enumerate(groups) if n.startswith(g)] for n, _ in model.named_parameters()]
    assert all(len(o) == 1 for o in owners), "every parameter in exactly one stage or the head"
    order = [o[0] for o in owners]
    assert order == sorted(order) and set(order) == set(range(len(groups))), "stages input side first, none empty"


def test_frozen_parameters_get_no_gradient_and_do_not_change(mod, train):
    torch.manual_seed(0)
    model = mod.build_model("resnet18", num_classes=4)
    args = train.get_args_parser().parse_args(["--method", "finetune", "--lr", "0.1"])
    optimizer = train.make_optimizer(model, "resnet18", args)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.1, 0.01])  # head, backbone × 0.1
    train.set_frozen(model, "resnet18", 2)
    frozen = prefixes(mod, "resnet18", 2)
    for name, param in model.named_parameters():
        assert param.requires_grad == (not name.startswith(frozen)), name
    model.train()
    assert not model.layer1[0].bn1.training and model.layer2[0].bn1.training  # frozen BN keeps eval mode
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for _ in range(2):  # the second step has momentum
        loss = F.cross_entropy(model(torch.randn(8, 3, 32, 32)), torch.randint(0, 4, (8,)))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    after = model.state_dict()
    for key, value in before.items():
        if key.startswith(frozen):  # weights and BatchNorm statistics
            assert torch.equal(value, after[key]), key
    for key in ("layer2.0.conv1.weight", "layer2.0.bn1.running_mean", "layer4.1.conv2.weight", "fc.weight"):
        assert not torch.equal(before[key], after[key]), key
    train.set_frozen(model, "resnet18", 0)
    model.train()
    assert model.layer1[0].bn1.training and all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("method, k", [("scratch", 0), ("freeze", 5), ("features", 5), ("finetune", 3)])
def test_each_method_trains_a_step(mod, train, source, tmp_path, method, k):
    weights = [] if method == "scratch" else ["--weights", str(source)]
    summary = train.main([*FAST, "--method", method, *weights, "--output-dir", str(tmp_path),
                          "--feature-cache", str(tmp_path / "cache")])
    ckpt = torch.load(tmp_path / "last.pth", weights_only=True)
    assert ckpt["extra"]["method"] == method and ckpt["class_names"] == ["vstripes", "checker", "x", "frame"]
    model = mod.build_model("resnet18", num_classes=4)
    frozen = prefixes(mod, "resnet18", k)
    expected = sum(p.numel() for n, p in model.named_parameters() if not n.startswith(frozen))
    assert summary["trainable_params"] == expected
    if method == "scratch":
        return
    src = torch.load(source, weights_only=True)["model"]
    for key, value in ckpt["model"].items():
        if key.startswith(frozen):
            assert torch.equal(value, src[key]), key
    for stage in mod.STAGES["resnet18"][k:]:
        assert any(not torch.equal(v, src[key]) for key, v in ckpt["model"].items() if key.startswith(stage)), stage
    report = json.loads((tmp_path / "weights_report.json").read_text())
    assert report["mismatched"] == {"fc.weight": [[6, 512], [4, 512]], "fc.bias": [[6], [4]]}
    assert len(report["loaded"]) == len(src) - 2 and report["missing"] == report["unexpected"] == []


def test_feature_cache_is_reused_and_invalidated(mod, train, source, tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"

    def run(out, weights=source, *extra):
        return train.main([*FAST, "--method", "features", "--weights", str(weights), "--feature-cache", str(cache),
                           "--output-dir", str(tmp_path / out), *extra])["feature_cache"]

    first = run("a")
    assert not first["reused"]
    vectors = torch.load(first["path"], weights_only=True)
    model = mod.build_model("resnet18", num_classes=4)
    load_matching(model, source, log=None)
    images = shapes_subset(TRANSFER_TARGET, 4, 32, 0, "train")
    x = torch.from_numpy(images.data).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = mod.feature_extractor(model, "resnet18").eval()(x)
    torch.testing.assert_close(vectors["train"], expected, rtol=1e-4, atol=1e-5)
    assert vectors["train_labels"].tolist() == images.targets

    def no_extraction(*args, **kwargs):
        raise AssertionError("the backbone ran although the cache was valid")

    with monkeypatch.context() as m:
        m.setattr(feature_cache, "extract_features", no_extraction)
        again = run("b")
    assert again["reused"] and again["path"] == first["path"]
    printed = capsys.readouterr().out
    assert f"feature cache: reused {first['path']} (16 train + 16 val vectors of 512)" in printed, printed
    assert f"s into {first['path']} (16 train + 16 val vectors of 512)" in printed  # extracted in …s into …

    altered = torch.load(source, weights_only=True)
    altered["model"]["layer4.1.bn2.running_var"] += 0.5  # a statistic, not a parameter: still the backbone
    torch.save(altered, tmp_path / "altered.pth")
    other_weights = run("c", tmp_path / "altered.pth")
    other_data = run("d", source, "--seed", "1")
    assert not other_weights["reused"] and not other_data["reused"]
    assert len({first["path"], other_weights["path"], other_data["path"]}) == 3
    assert len(list(cache.glob("*.pt"))) == 3

    pathlib.Path(first["path"]).write_text("not a tensor file")  # a damaged cache says how to recover
    with pytest.raises(UserError) as err:
        run("e")
    assert str(err.value) == (f"feature cache {first['path']} is not a PyTorch file (neither a zip archive nor a pickle; "
                              "it starts with b'not '); delete it and the next run rebuilds it")


class Interrupted(Exception):
    pass


def test_freeze_epochs_switch_phase_and_resume_across_it(mod, train, source, tmp_path, capsys, monkeypatch):
    from common import engine

    args = [*FAST, "--method", "finetune", "--weights", str(source), "--freeze-epochs", "2", "--freeze-stages", "2",
            "--epochs", "3"]
    full = tmp_path / "full"
    train.main([*args, "--output-dir", str(full)])
    log = capsys.readouterr().out
    assert "epoch 1: 5/5 backbone stages frozen" in log and "epoch 3: 2/5 backbone stages frozen" in log
    assert "epoch 2: " not in log.replace("epoch 2/3", "")  # no phase change at epoch 2

    src = torch.load(source, weights_only=True)["model"]
    part = tmp_path / "part"
    real_epoch = engine.train_one_epoch
    for stop in (1, 2, None):  # killed at the start of epoch 2, of epoch 3 (resumed in phase 1), then run to the end
        def killed(*a, **kw):
            if kw["epoch"] == stop:
                raise Interrupted
            return real_epoch(*a, **kw)

        resume = ["--resume", str(part / "last.pth")] if stop != 1 else []
        with monkeypatch.context() as m:
            m.setattr(engine, "train_one_epoch", killed)
            with pytest.raises(Interrupted) if stop else nullcontext():
                train.main([*args, "--output-dir", str(part), *resume])
        ckpt = torch.load(part / "last.pth", weights_only=True)
        assert ckpt["epoch"] == (stop - 1 if stop else 2)
        changed = {k for k, v in ckpt["model"].items() if not k.startswith("fc.") and not torch.equal(v, src[k])}
        if stop:
            assert not changed, "the backbone trained during the frozen phase"
        else:
            assert changed and all(not key.startswith(prefixes(mod, "resnet18", 2)) for key in changed)
            assert any(key.startswith("layer2.") for key in changed)
    assert "epoch 3: 2/5 backbone stages frozen" in capsys.readouterr().out
    reference = torch.load(full / "last.pth", weights_only=True)
    for key, value in reference["model"].items():
        assert torch.equal(value, ckpt["model"][key]), key
    assert ckpt["optimizer"]["state"].keys() == reference["optimizer"]["state"].keys()


def test_weights_from_other_folders_and_raw_state_dicts(mod, train, tmp_path):
    # 03_cifar_train's checkpoint → tudui (same layer names): all but the last classifier layer
    load("03_cifar_train", "train").main(["--data", "synthetic", "--synthetic-size", "32", "-b", "16", "--epochs", "1",
                                          "--limit-batches", "1", "--output-dir", str(tmp_path / "c03")])
    train.main([*FAST, "--model", "tudui", "--method", "freeze", "--weights", str(tmp_path / "c03" / "last.pth"),
                "--output-dir", str(tmp_path / "t")])
    report = json.loads((tmp_path / "t" / "weights_report.json").read_text())
    layers = ("conv1", "conv2", "conv3", "Linear1")
    assert set(report["loaded"]) == {f"{n}.{p}" for n in layers for p in ("weight", "bias")}
    assert report["mismatched"] == {"Linear2.weight": [[10, 64], [4, 64]], "Linear2.bias": [[10], [4]]}

    # a 05_mobilenet checkpoint and a raw torchvision state_dict → the same names, only the classifier skipped
    mobilenet = load("05_mobilenet").build_model("mobilenet_v2", num_classes=10)
    torch.save({"model": mobilenet.state_dict(), "model_name": "mobilenet_v2"}, tmp_path / "c05.pth")
    target = mod.build_model("mobilenet_v2", num_classes=4)
    report = load_matching(target, tmp_path / "c05.pth", log=None)
    assert set(report.mismatched) == {"classifier.1.weight", "classifier.1.bias"} and not report.missing
    torch.testing.assert_close(target.features[3].conv[1][0].weight, mobilenet.features[3].conv[1][0].weight)
    torch.save(mod.build_model("resnet18", num_classes=1000).state_dict(), tmp_path / "raw.pth")
    report = load_matching(mod.build_model("resnet18", num_classes=4), tmp_path / "raw.pth", log=None)
    assert set(report.mismatched) == {"fc.weight", "fc.bias"} and len(report.loaded) == 120


def test_torchvision_weights_name_offline_is_one_line_error(train, tmp_path, monkeypatch):
    import torchvision.models._api as api

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    with pytest.raises(UserError, match=r"could not download ResNet18_Weights.IMAGENET1K_V1 .*offline") as err:
        train.main([*FAST, "--method", "freeze", "--weights", "ResNet18_Weights.IMAGENET1K_V1",
                    "--output-dir", str(tmp_path)])
    assert "\n" not in str(err.value) and not (tmp_path / "last.pth").exists()


def test_imagefolder_features_cache_and_predict(mod, train, source, tmp_path, capsys):
    for split, per_class in (("train", 4), ("val", 2)):
        write_imagefolder(shapes_subset(("disk", "ring"), per_class, 32, 0, split), tmp_path / "data" / split)
    args = ["--data", "imagefolder", "--data-path", str(tmp_path / "data"), "--image-size", "32",
            "--method", "features", "--weights", str(source), *FAST, "--feature-cache", str(tmp_path / "cache")]
    first = train.main([*args, "--output-dir", str(tmp_path / "a")])
    assert train.main([*args, "--output-dir", str(tmp_path / "b")])["feature_cache"]["reused"]
    shutil.copy(tmp_path / "data" / "val" / "disk" / "00000.png", tmp_path / "data" / "val" / "disk" / "00002.png")
    changed = train.main([*args, "--output-dir", str(tmp_path / "c")])["feature_cache"]
    assert not changed["reused"] and changed["path"] != first["feature_cache"]["path"]

    ckpt_path = tmp_path / "a" / "last.pth"
    ckpt = torch.load(ckpt_path, weights_only=True)
    assert ckpt["class_names"] == ["disk", "ring"] and ckpt["preprocess"]["crop"] == 32
    images = sorted((tmp_path / "data" / "val").rglob("*.png"))
    assert load("08_transfer", "predict").main([str(ckpt_path), *map(str, images)]) == 0
    predicted = [line.rsplit(": ", 1)[1].split(" (")[0] for line in capsys.readouterr().out.splitlines()
                 if line.startswith(str(tmp_path / "data"))]
    assert len(predicted) == len(images)
    model = mod.build_model("resnet18", num_classes=2)
    model.load_state_dict(ckpt["model"])
    model.eval()
    from common.predict import preprocess_transform

    transform = preprocess_transform(ckpt["preprocess"])
    with torch.no_grad():
        x = torch.stack([transform(Image.open(p).convert("RGB")) for p in images])
        expected = [ckpt["class_names"][i] for i in model(x).argmax(1).tolist()]
    assert predicted == expected


@pytest.mark.parametrize("args, message", [
    (["--method", "freeze"], "give --weights"),
    (["--method", "scratch", "--weights", "x.pth"], "drop --weights"),
    (["--method", "freeze", "--weights", "{src}", "--freeze-epochs", "1"], "finetune only"),
    (["--method", "finetune", "--weights", "{src}", "--freeze-stages", "6"], r"must be in \[0, 5\]"),
    (["--model", "tudui", "--image-size", "64", "--method", "scratch"], "32×32 inputs only"),
    (["--method", "freeze", "--weights", "VGG16_Weights.IMAGENET1K_V1"], "does not fit --model resnet18"),
    (["--method", "finetune", "--resume", "{src}"], "--method finetune \\(was scratch\\)"),
    (["--synthetic-task", "source", "--synthetic-size", "48", "--epochs", "2", "--method", "freeze",
      "--resume", "{src}"],
     "--method freeze \\(was scratch\\)"),  # the same model, classes and preprocessing: only the method differs
    (["--method", "scratch", "-b", "64"], "larger than the training set"),
    (["--method", "scratch", "--data", "imagefolder", "--data-path", "{tmp}"], "no train/ and val/ class folders"),
])
def test_bad_arguments(train, source, tmp_path, args, message):
    args = [a.format(src=source, tmp=tmp_path) for a in args]
    with pytest.raises(UserError, match=message):
        train.main([*FAST, *args, "--output-dir", str(tmp_path / "out")])
    assert not (tmp_path / "out" / "last.pth").exists()


def test_cli_bad_input_exits_2_with_one_line(tmp_path):
    result = subprocess.run([sys.executable, "08_transfer/train.py", "--method", "features", "--output-dir",
                             str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: --method features transfers a trained model")
    assert not any(tmp_path.iterdir())


@pytest.fixture(scope="module")
def compare():
    return load("08_transfer", "compare")


def brightness_stats(image: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(|shape − background| mean brightness, background brightness sd): brightness = channel mean in [0, 1]."""
    y = image.astype(np.float64).mean(2) / 255
    return abs(y[mask].mean() - y[~mask].mean()), y[~mask].std()


def test_shifted_target_has_low_contrast_under_uneven_lighting_unlike_the_source():
    """The stated shift, measured on the pixels: the source's shapes differ from their background by ≥ 0.45 in
    brightness over a faint texture; the target's by 0.10-0.25, under a strong brightness field."""
    from common.synthetic import SPLITS, SyntheticShapes, _background, _colours, _grid, _shape_mask

    shift = load("08_transfer", "shift")
    n, size = 40, 32
    source = SyntheticShapes(n, size, num_classes=6, seed=0, split="train")
    source_stats = []
    for i in range(n):  # replay SyntheticShapes.draw's random stream for the shape mask
        rng = np.random.default_rng([0, SPLITS["train"], i])
        yy, xx = _grid(size)
        fg, bg = _colours(rng)
        _background(rng, size, bg, yy, xx)
        r = rng.uniform(0.22, 0.36) * size
        cy, cx = rng.uniform(r, size - r, 2)
        mask = _shape_mask(source.classes[source.targets[i]], yy, xx, cy, cx, r, float(rng.integers(2, 5)))
        assert np.abs(source.data[i][mask].mean(0) / 255 - fg).max() < 0.03  # the replayed mask is the drawn shape
        source_stats.append(brightness_stats(source.data[i], mask))
    target = shift.ShiftedShapes(n, size, num_classes=4, seed=0, split="train")
    assert target.classes == ["vstripes", "checker", "x", "frame"]
    assert not set(target.classes) & set(source.classes)
    target_stats = []
    for i in range(n):
        image, mask = target.render(i, size, 0, "train")
        assert np.array_equal(image, target.data[i]) and mask.any() and not mask.all()
        target_stats.append(brightness_stats(image, mask))
    (src_gap, src_sd), (tgt_gap, tgt_sd) = np.median(source_stats, 0), np.median(target_stats, 0)
    assert src_gap > 0.4 and 0.1 < tgt_gap < 0.25, (src_gap, tgt_gap)
    assert tgt_sd > 2 * src_sd, (src_sd, tgt_sd)


def test_shots_subset_has_k_per_class_is_nested_and_deterministic_per_seed(compare):
    pool = compare.ShiftedShapes(4 * 6, 32, 4, seed=3, split="train")
    subsets = {k: compare.shots_subset(pool.targets, k) for k in (1, 2, 6)}
    for k, index in subsets.items():
        assert sorted(np.bincount(np.asarray(pool.targets)[index]).tolist()) == [k] * 4
    assert set(subsets[1]) < set(subsets[2]) < set(subsets[6])
    again = compare.ShiftedShapes(4 * 6, 32, 4, seed=3, split="train")
    other = compare.ShiftedShapes(4 * 6, 32, 4, seed=4, split="train")
    assert np.array_equal(again.data[compare.shots_subset(again.targets, 2)], pool.data[subsets[2]])
    assert not np.array_equal(other.data[subsets[2]], pool.data[subsets[2]])
    with pytest.raises(ValueError, match="fewer than 7"):
        compare.shots_subset(pool.targets, 7)


def test_every_variant_gets_the_same_steps_and_images(compare, mod, monkeypatch):
    """Counted where they happen (SGD.step calls, rows reaching the loss), not taken from the loop's own report."""
    config = compare.Config("tudui", (1, 5), steps=3, batch=4, lr=0.01, val_per_class=2, source_size=6,
                            source_epochs=1, source_lr=0.01)
    source = mod.build_model("tudui", num_classes=6).state_dict()
    target = compare.Target(config, 0, source, torch.device("cpu"))
    counts = {"steps": 0, "images": 0}
    step, loss = torch.optim.SGD.step, F.cross_entropy

    def counted_step(self, *args, **kwargs):
        counts["steps"] += 1
        return step(self, *args, **kwargs)

    def counted_loss(logits, labels, *args, **kwargs):
        counts["images"] += len(labels)
        return loss(logits, labels, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", counted_step)
    monkeypatch.setattr(F, "cross_entropy", counted_loss)
    head = sum(p.numel() for n, p in mod.build_model("tudui", 4).named_parameters() if n.startswith("Linear"))
    trainable = {}
    for name, method, scale in compare.variants():
        for k in config.shots:
            counts.update(steps=0, images=0)
            result = target.run(method, scale, k, source)
            assert counts == {"steps": 3, "images": 12} and result["images_seen"] == 12, (name, k)
            assert 0 <= result["accuracy"] <= 1
            trainable[name] = result["trainable"]
    assert trainable["freeze"] == trainable["features"] == head
    assert head < trainable["finetune ×0.1"] == trainable["finetune ×1"] < trainable["scratch"]
    for scale, backbone_lr in ((0.1, 0.001), (1.0, 0.01)):  # finetune's groups: head at lr, backbone at lr × scale
        optimizer = compare.train.make_optimizer(mod.build_model("tudui", 4), "tudui",
                                                 compare.method_args(config, "finetune", scale))
        assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.01, backbone_lr])
    assert [s for _, method, s in compare.variants() if method == "finetune"] == list(compare.SCALES) == [0.1, 1.0]


def test_readme_block_is_replaced_between_the_markers_only(compare, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{compare.BEGIN}\nold table\n{compare.END}\nrest\n")
    compare.write_readme("new table", readme)
    compare.write_readme("newer table", readme)
    assert readme.read_text() == f"intro\n{compare.BEGIN}\nnewer table\n{compare.END}\nrest\n"
    readme.write_text("no markers\n")
    with pytest.raises(UserError, match="needs exactly one"):
        compare.write_readme("table", readme)
    assert readme.read_text() == "no markers\n"


def test_compare_main_prints_the_table_writes_the_plot_and_the_readme(compare, tmp_path, monkeypatch):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{compare.BEGIN}\nold\n{compare.END}\nrest\n")
    monkeypatch.setattr(compare, "README", readme)
    block = compare.main(["--quick", "--seeds", "2", "--shots", "1", "2", "--steps", "2", "-b", "4",
                          "--source-size", "12", "--source-epochs", "1", "--val-per-class", "2",
                          "--output-dir", str(tmp_path / "runs"), "--assets", str(tmp_path / "assets"),
                          "--update-readme"])
    lines = block.splitlines()
    assert lines[0].startswith("`python ") and "wall time" in lines[0] and lines[1] == ""
    assert lines[2] == "| variant | 1 shots | 2 shots | seeds | time / run |"
    rows = [line.split(" | ") for line in lines[4:9]]
    assert [r[0].lstrip("| ") for r in rows] == [name for name, *_ in compare.variants()]
    for row in rows:
        for cell in row[1:3]:
            mean, sd = map(float, cell.split(" ± "))
            assert 0 <= mean <= 1 and sd >= 0
        assert row[3] == "2"
    assert "200 steps" not in block and "2 steps of batch 4" in block
    assert readme.read_text() == f"intro\n{compare.BEGIN}\n{block}\n{compare.END}\nrest\n"
    assert (tmp_path / "assets" / "shots.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("flags, message", [(["--shots", "0", "5"], "--shots must be at least 1"),
                                            (["--shots", "5", "5"], "--shots must be distinct"),
                                            (["--steps", "0"], "--steps must be at least 1"),
                                            (["--source-size", "5"], "--source-size must be at least 6"),
                                            (["--device", "nonsense"], "is not a device")])
def test_compare_bad_flags_are_user_errors_before_training(compare, tmp_path, flags, message):
    with pytest.raises(UserError, match=message):
        compare.main(["--quick", *flags, "--output-dir", str(tmp_path / "runs"), "--assets", str(tmp_path)])
    assert not any(tmp_path.iterdir())


def test_a_checkpoint_of_another_architecture_is_refused_not_loaded(tmp_path):
    """Issue 11: a MobileNetV1 (α 0.5) checkpoint matched MobileNetV2 only in one `num_batches_tracked` buffer, "loaded
    1 tensors" and --method freeze trained a head on a random frozen backbone."""
    v1 = load("05_mobilenet", "model").build_model("mobilenet_v1", 10, width_mult=0.5)
    torch.save({"model": v1.state_dict()}, tmp_path / "v1.pth")
    with pytest.raises(UserError, match="no parameter of the model matches.*buffers did"):
        load("08_transfer", "train").main([*FAST, "--model", "mobilenet_v2", "--method", "freeze",
                                           "--weights", str(tmp_path / "v1.pth"), "--output-dir", str(tmp_path / "o")])


def test_tudui_is_03s_network_under_its_names(mod):
    """08's `tudui` is 03_cifar_train's Tudui: same children in the same order, same shapes (10 classes by default),
    03's state_dict loads strictly and gives the same outputs, layer by layer in the notes' forward order."""
    ours, notes = mod.Tudui(), load("03_cifar_train").Tudui()
    assert [(n, type(m)) for n, m in ours.named_children()] == [(n, type(m)) for n, m in notes.named_children()]
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in notes.state_dict().items()}
    assert [(c.stride, c.padding) for c in (ours.conv1, ours.conv2, ours.conv3)] == [((1, 1), (2, 2))] * 3
    assert all(p.kernel_size == 2 for p in (ours.maxpool1, ours.maxpool2, ours.maxpool3))
    ours.load_state_dict(notes.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(ours(x), notes(x))
    built = mod.build_model("tudui", 3)
    assert isinstance(built, mod.Tudui) and built.Linear2.out_features == 3
    with pytest.raises(TypeError):  # no silently ignored option: tudui takes only the class count
        mod.build_model("tudui", 3, width_mult=0.5)


def test_build_model_passes_options_to_torchvision_and_names_unknown_models(mod):
    with torch.device("meta"):
        narrow = mod.build_model("mobilenet_v2", 5, width_mult=0.5)
        resnet = mod.build_model("resnet18", 7)
    assert narrow.features[0][0].out_channels == 16 and narrow.classifier[1].out_features == 5
    assert type(resnet).__name__ == "ResNet" and resnet.fc.out_features == 7
    expected = r"^unknown model 'alexnet'; choose from \('resnet18', 'mobilenet_v2', 'vgg16', 'tudui'\)$"
    with pytest.raises(ValueError, match=expected):
        mod.build_model("alexnet", 3)
    with pytest.raises(ValueError, match=expected):
        mod.feature_extractor(resnet, "alexnet")
