"""06_fcn: FCN-32s/16s/8s (全卷积, 跳级结构), convolutionalized VGG16 weights, bilinear transposed convs, train/predict."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from common.errors import UserError
from util import load

fcn = load("06_fcn", "model")


@pytest.mark.parametrize("name", fcn.MODELS)
def test_output_size_equals_input_size_for_odd_sizes_and_train_step(name: str) -> None:
    torch.manual_seed(0)
    model = fcn.build_model(name, num_classes=3, backbone="light").eval()
    for h, w in ((37, 29), (33, 65), (7, 5)):
        assert model(torch.randn(1, 3, h, w)).shape == (1, 3, h, w)
    model.train()
    x, y = torch.randn(2, 3, 45, 51), torch.randint(0, 3, (2, 45, 51))
    y[:, :, :4] = 255
    loss = nn.CrossEntropyLoss(ignore_index=255)(model(x), y)
    loss.backward()
    assert torch.isfinite(loss)
    # the zero-initialised score layer receives a gradient, so the net can learn from its zero start
    assert model.score_fr.weight.grad.abs().sum() > 0


def test_no_linear_layer_anywhere_and_skips_as_specified() -> None:
    models = {n: fcn.build_model(n, 5, backbone="light") for n in fcn.MODELS}
    for model in models.values():
        assert not any(isinstance(m, nn.Linear) for m in model.modules())
    assert not hasattr(models["fcn32s"], "score_pool4")
    assert hasattr(models["fcn16s"], "score_pool4") and not hasattr(models["fcn16s"], "score_pool3")
    assert hasattr(models["fcn8s"], "score_pool3")
    strides = {n: m.upscore.stride[0] for n, m in models.items()}
    assert strides == {"fcn32s": 32, "fcn16s": 16, "fcn8s": 8}


def test_skips_start_as_no_ops() -> None:
    """The paper zero-initialises new score layers: an untrained 16s/8s equals 32s with the same weights upsampled."""
    torch.manual_seed(0)
    m32 = fcn.build_model("fcn32s", 2, backbone="light").eval()
    m8 = fcn.build_model("fcn8s", 2, backbone="light").eval()
    m8.load_state_dict({k: v for k, v in m32.state_dict().items() if not k.startswith("upscore")}, strict=False)
    nn.init.normal_(m8.score_fr.weight)
    m32.score_fr.weight.data.copy_(m8.score_fr.weight)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        coarse = m32.score_fr(m32.fc(m32.features(x)))
        fine = m8(x)
        expected = m8.upscore(m8.upscore_pool4(m8.upscore2(coarse)))
    assert torch.allclose(fine, expected, atol=1e-5)


@pytest.mark.parametrize("factor", [2, 8, 32])
def test_transposed_conv_starts_as_bilinear_upsampling(factor: int) -> None:
    up = fcn.upsample(3, factor)
    x = torch.randn(1, 3, 6, 5)
    out = up(x)
    assert out.shape[-2:] == (6 * factor, 5 * factor)
    ref = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    inner = (..., slice(factor, -factor), slice(factor, -factor))  # borders differ: zero padding vs edge clamping
    assert torch.allclose(out[inner], ref[inner], atol=1e-5)


def test_convolutionalized_vgg16_fc7_equals_torchvision_classifier() -> None:
    """fc6 (Linear 25088→4096) as a 7×7 conv and fc7 as a 1×1 conv reproduce torchvision's classifier at 224×224."""
    import torchvision

    torch.manual_seed(0)
    vgg = torchvision.models.vgg16(weights=None).eval()
    model = fcn.build_model("fcn8s", num_classes=21).eval()
    missing, unexpected = model.load_state_dict(fcn.convolutionalize(vgg.state_dict()), strict=False)
    assert not unexpected and all(k.startswith(("score", "upscore")) for k in missing)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        pool5 = vgg.features(x)
        reference = vgg.classifier[:5](torch.flatten(vgg.avgpool(pool5), 1))  # fc6, relu, dropout, fc7, relu
        ours = model.fc(model.features(x))
    assert ours.shape == (1, 4096, 7, 7)
    assert torch.allclose(ours[0, :, 3, 3], reference[0], atol=1e-5)
    assert reference.abs().max() > 0


FAST = ["--data", "synthetic", "--backbone", "light", "--synthetic-size", "8", "-b", "4", "--crop-size", "32",
        "--epochs", "1", "--print-freq", "1"]


def test_train_then_predict_writes_palette_masks_at_the_input_size(tmp_path) -> None:
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train = load("06_fcn", "train")
    summary = train.main([*FAST, "--model", "fcn16s", "--output-dir", str(tmp_path / "run")])
    assert 0 <= summary["metrics"]["miou"] <= 1 and len(summary["metrics"]["iou"]) == 6
    ckpt = torch.load(tmp_path / "run" / "last.pth", weights_only=True)
    assert ckpt["model_kwargs"] == {"backbone": "light"} and ckpt["class_names"][0] == "background"
    assert ckpt["scheduler"]["last_epoch"] == 2  # poly LR stepped per iteration: 8 images / batch 4
    tags = set(EventAccumulator(str(tmp_path / "run")).Reload().Tags()["scalars"])
    assert {"train_loss", "lr", "test_loss", "test_miou", "test_pixel_accuracy"} <= tags

    image = tmp_path / "odd.png"
    Image.new("RGB", (45, 33), (30, 200, 90)).save(image)
    predict = load("06_fcn", "predict")
    assert predict.main([str(tmp_path / "run" / "last.pth"), str(image), "--output-dir", str(tmp_path / "out")]) == 0
    mask = Image.open(tmp_path / "out" / "odd_mask.png")
    assert mask.mode == "P" and mask.size == (45, 33)
    assert mask.getpalette()[3:6] == [128, 0, 0]  # VOC palette: class 1 is dark red
    assert Image.open(tmp_path / "out" / "odd_overlay.png").size == (45, 33)


def test_train_on_voc_layout_and_bad_input(tmp_path) -> None:
    from common.errors import UserError
    from common.synthetic import SyntheticSegmentation, write_voc

    voc = write_voc(tmp_path / "data", {"train": SyntheticSegmentation(4, image_size=36),
                                        "val": SyntheticSegmentation(2, image_size=35, split="val")})
    train = load("06_fcn", "train")
    args = ["--data", "voc", "--data-path", str(tmp_path / "data"), "--backbone", "light", "-b", "2",
            "--crop-size", "32", "--epochs", "1", "--limit-batches", "1"]
    summary = train.main([*args, "--output-dir", str(tmp_path / "run")])
    ckpt = torch.load(tmp_path / "run" / "last.pth", weights_only=True)
    assert len(ckpt["class_names"]) == 21 and len(summary["metrics"]["iou"]) == 21
    with pytest.raises(UserError, match="--weights-backbone VGG16_Weights.IMAGENET1K_V1 needs --backbone vgg16"):
        train.main([*args, "--weights-backbone", "VGG16_Weights.IMAGENET1K_V1", "--output-dir", str(tmp_path / "x")])
    (voc / "ImageSets" / "Segmentation" / "val.txt").unlink()
    with pytest.raises(UserError, match="val split"):
        train.main([*args, "--output-dir", str(tmp_path / "y")])


def test_compare_runs_the_staged_protocol_and_draws_both_figures(tmp_path, capsys) -> None:
    """16s starts from the trained 32s (same seed) and 8s from 16s; the control trains 32s as long as the chain."""
    compare = load("06_fcn", "compare")
    rows = compare.main(["--seeds", "2", "--epochs", "1", "--stage-epochs", "1", "--synthetic-size", "4", "-b", "4",
                         "--image-size", "32", "--output-dir", str(tmp_path / "runs"), "--assets", str(tmp_path)])
    out = capsys.readouterr().out
    assert [(r["variant"], r["seed"]) for r in rows] == [(v, s) for v in [*compare.STAGES, "32s, same steps"]
                                                         for s in (0, 1)]
    assert "| variant | mIoU | boundary IoU (2 px) | bar IoU | seeds | time / run |" in out
    assert "| 8s from 16s | " in out and "`python " in out and "wall time" in out
    ckpt = {name: torch.load(tmp_path / "runs" / name / "seed1" / "last.pth", weights_only=True)
            for name in (*compare.STAGES, "32s, same steps")}
    assert ckpt["16s from 32s"]["args"]["weights"] == str(tmp_path / "runs" / "32s" / "seed1" / "last.pth")
    assert ckpt["8s from 16s"]["model_name"] == "fcn8s" and ckpt["32s, same steps"]["args"]["epochs"] == 3
    assert all(c["args"]["seed"] == 1 and c["args"]["image_size"] == 32 for c in ckpt.values())
    for name in ("compare.png", "stages.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    for flag in ("--seeds", "--stage-epochs"):
        with pytest.raises(UserError, match=rf"^{flag} must be at least 1, got 0$"):
            compare.main([flag, "0", "--output-dir", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()


def light_vgg_classifier_file(path) -> tuple[dict, dict]:
    """A torchvision-format VGG state_dict (features + classifier.0/3/6 Linear layers) for the light backbone: what
    `torch.save(torchvision.models.vgg16(weights=...).state_dict(), path)` gives for the real one."""
    net = fcn.build_model("fcn32s", 21, backbone="light")
    torch.manual_seed(1)
    source = {k: (torch.rand_like(v) + 0.5 if k.endswith("running_var") else torch.randn_like(v))  # a variance is > 0
              if v.is_floating_point() else v for k, v in net.features.state_dict().items()}
    source = {f"features.{k}": v for k, v in source.items()}
    source.update({"classifier.0.weight": torch.randn(512, 64 * 49), "classifier.0.bias": torch.randn(512),
                   "classifier.3.weight": torch.randn(512, 512), "classifier.3.bias": torch.randn(512),
                   "classifier.6.weight": torch.randn(1000, 512), "classifier.6.bias": torch.randn(1000)})
    torch.save(source, path)
    return source, net.state_dict()


def test_backbone_state_dict_convolutionalizes_only_a_whole_vgg_classifier() -> None:
    """fc6/fc7 are converted only when both classifier Linear layers are there, 2-D, with 49 = 7·7 columns per
    channel; a features-only file, or one with a single classifier layer, passes its features through untouched."""
    net = fcn.build_model("fcn32s", 2, backbone="light")
    features = {f"features.{k}": v for k, v in net.features.state_dict().items()}
    assert fcn.backbone_state_dict(features) == features
    one_layer = {**features, "classifier.0.weight": torch.randn(512, 64 * 49)}
    assert fcn.backbone_state_dict(one_layer) == features  # not half-converted, no KeyError
    odd = {**features, "classifier.0.weight": torch.randn(512, 50), "classifier.3.weight": torch.randn(512, 512)}
    assert fcn.backbone_state_dict(odd) == features  # 50 columns are no 7×7 map: left alone
    whole = {**one_layer, "classifier.0.bias": torch.randn(512), "classifier.3.weight": torch.randn(512, 512),
             "classifier.3.bias": torch.randn(512)}
    assert fcn.backbone_state_dict(whole)["fc.0.weight"].shape == (512, 64, 7, 7)


def test_backbone_from_a_local_torchvision_format_file(tmp_path) -> None:
    """Offline: --weights-backbone FILE; conv layers by name, fc6/fc7 convolutionalized, the score layers untouched."""
    source, _ = light_vgg_classifier_file(tmp_path / "vgg.pth")
    train = load("06_fcn", "train")
    model = fcn.build_model("fcn8s", 6, backbone="light")
    lines = []
    report = train.load_backbone(model, str(tmp_path / "vgg.pth"), log=lines.append)
    assert torch.equal(model.features[0].weight, source["features.0.weight"])
    assert torch.equal(model.features[1].running_var, source["features.1.running_var"])
    assert torch.equal(model.fc[0].weight, source["classifier.0.weight"].reshape(512, 64, 7, 7))
    assert torch.equal(model.fc[3].weight[:, :, 0, 0], source["classifier.3.weight"])
    assert model.score_fr.weight.abs().sum() == 0 and "score_fr.weight" in report.missing
    assert not any(k.startswith("classifier") for k in report.unexpected)  # fc8 is no backbone: never offered
    # every parameter but the 9 of the class-score and upsampling layers (score_fr, score_pool4, score_pool3: w + b;
    # upscore2, upscore_pool4, upscore)
    assert "parameter tensors" in lines[0] and len(report.loaded_parameters) == len(report.parameters) - 9


def test_train_with_a_backbone_file_and_one_line_errors(tmp_path, capsys) -> None:
    light_vgg_classifier_file(tmp_path / "vgg.pth")
    train = load("06_fcn", "train")
    args = [*FAST, "--limit-batches", "1"]
    train.main([*args, "--weights-backbone", str(tmp_path / "vgg.pth"), "--output-dir", str(tmp_path / "run")])
    assert "loaded" in capsys.readouterr().out
    with pytest.raises(UserError, match=r"^--weights-backbone \S*nowhere.pth: no such file, and not a torchvision"):
        train.main([*args, "--weights-backbone", str(tmp_path / "nowhere.pth"), "--output-dir", str(tmp_path / "x")])


@pytest.mark.parametrize("name", fcn.MODELS)
def test_forward_is_the_papers_skip_sum(name: str) -> None:
    """跳级结构 recomputed by hand with every layer non-zero: 32s = up32(score_fr(fc7)); 16s = up16(up2(score_fr) +
    score_pool4(pool4)); 8s = up8(up2(up2(score_fr) + score_pool4(pool4)) + score_pool3(pool3)), padded to ×32 and
    cropped back. Dropping a skip addition or a stage fails this."""
    torch.manual_seed(0)
    model = fcn.build_model(name, 3, backbone="light").eval()
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():  # the zero-initialised score layers
                p.normal_(0, 0.1)
        x = torch.randn(1, 3, 40, 70)
        padded = F.pad(x, (0, 96 - 70, 0, 64 - 40))
        pools = [i for i, m in enumerate(model.features) if isinstance(m, nn.MaxPool2d)]
        pool3 = model.features[:pools[2] + 1](padded)
        pool4 = model.features[pools[2] + 1:pools[3] + 1](pool3)
        scores = model.score_fr(model.fc(model.features[pools[3] + 1:](pool4)))
        assert scores.shape[-2:] == (2, 3) and pool4.shape[-2:] == (4, 6) and pool3.shape[-2:] == (8, 12)
        if name != "fcn32s":
            scores = model.upscore2(scores) + model.score_pool4(pool4)
        if name == "fcn8s":
            scores = model.upscore_pool4(scores) + model.score_pool3(pool3)
        expected = model.upscore(scores)[..., :40, :70]
        out = model(x)
    assert out.shape == (1, 3, 40, 70) and torch.allclose(out, expected, atol=1e-5)
    if name != "fcn32s":  # and the skip matters: without pool4's scores the output changes
        with torch.no_grad():
            model.score_pool4.weight.zero_()
            model.score_pool4.bias.zero_()
            assert not torch.allclose(model(x), out, atol=1e-3)


def test_vgg_features_default_is_torchvisions_vgg16_and_light_has_batchnorm() -> None:
    import torchvision

    with torch.device("meta"):
        reference = torchvision.models.vgg16().features
    ours = fcn.vgg_features()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}
    assert [type(m) for m in ours] == [type(m) for m in reference]
    pools = [m for m in ours if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 5 and all((m.kernel_size, m.stride) == (2, 2) for m in pools)
    light = fcn.build_model("fcn32s", 3, backbone="light").features
    assert sum(isinstance(m, nn.BatchNorm2d) for m in light) == 13 and light[0].out_channels == 8


def test_build_model_and_fcn_arguments() -> None:
    assert fcn.build_model("fcn8s", 3, backbone="light").features[0].out_channels == 8  # kwargs reach FCN
    assert not hasattr(fcn.FCN(3, backbone="light"), "score_pool4")                    # default: FCN-32s
    with pytest.raises(ValueError, match=r"^unknown model 'fcn4s'; choose from \('fcn32s', 'fcn16s', 'fcn8s'\)$"):
        fcn.build_model("fcn4s", 3)
    with pytest.raises(ValueError, match=r"^unknown backbone 'vgg19'; choose from \('vgg16', 'light'\)$"):
        fcn.FCN(3, backbone="vgg19")
    with torch.device("meta"):
        full = fcn.build_model("fcn8s", 21)
    assert (full.score_pool3.in_channels, full.score_pool4.in_channels, full.fc[0].in_channels) == (256, 512, 512)
    assert full.fc[0].out_channels == full.fc[3].out_channels == full.score_fr.in_channels == 4096


def test_bilinear_kernel_for_odd_and_even_sizes() -> None:
    odd = fcn.bilinear_kernel(2, 3)  # factor 2, centre 1: taps 0.5, 1, 0.5
    assert odd[0, 0].tolist() == [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]]
    assert odd[0, 1].abs().sum() == 0 and torch.equal(odd[1, 1], odd[0, 0])  # channel i only reads channel i
    even = fcn.bilinear_kernel(1, 4)  # factor 2, centre 1.5: taps 0.25, 0.75, 0.75, 0.25
    assert even[0, 0, 0].tolist() == pytest.approx([0.0625, 0.1875, 0.1875, 0.0625])
    assert even.dtype == torch.float32


def test_a_large_photo_is_segmented_under_a_memory_limit(tmp_path) -> None:
    """The large-image policy in a real process capped at 6 GB of address space (torch itself maps ~3): a 6000×4000
    photo runs at the working size and gets a full-size mask. Segmented at full size it needs 3.7 GB resident and fails
    under a 7 GB cap (README, Large images)."""
    import resource
    import subprocess
    import sys

    from PIL import Image

    from util import ROOT

    model = load("06_fcn").build_model("fcn32s", num_classes=2, backbone="light")
    torch.save({"model": model.state_dict(), "model_name": "fcn32s", "model_kwargs": {"backbone": "light"},
                "class_names": ["background", "thing"], "preprocess": {}}, tmp_path / "fcn.pth")
    Image.new("RGB", (6000, 4000), (90, 120, 30)).save(tmp_path / "photo.jpg", quality=80)

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))

    done = subprocess.run([sys.executable, str(ROOT / "06_fcn" / "predict.py"), str(tmp_path / "fcn.pth"),
                           str(tmp_path / "photo.jpg"), "--output-dir", str(tmp_path / "out"), "--max-megapixels", "0.5"],
                          capture_output=True, text=True, preexec_fn=cap, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "segmented at 866x577 (--max-megapixels 0.5), mask scaled back" in done.stdout
    assert Image.open(tmp_path / "out" / "photo_mask.png").size == (6000, 4000)
