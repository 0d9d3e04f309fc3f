"""07_deeplab: the four DeepLab versions' structure (dilation, ASPP, multi-grid, decoder), sizes, training, CRF."""
from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from common import weights
from common.errors import UserError
from common.metrics import ConfusionMatrix
from common.synthetic import SyntheticSegmentation
from util import load

M = load("07_deeplab", "model")
CRF = load("07_deeplab", "crf")
CRF_DEMO = load("07_deeplab", "crf_demo")


@functools.cache
def light(name: str, output_stride: int | None = None, aux: bool = False) -> nn.Module:
    """Models are built once per configuration (construction dominates these tests); each test sets the mode."""
    torch.manual_seed(0)
    return M.build_model(name, 3, backbone="resnet18", output_stride=output_stride, aux=aux)


@functools.cache
def vgg_largefov() -> nn.Module:
    return M.build_model("deeplabv1", 21)


def dilations(module: nn.Module) -> list[int]:
    return [m.dilation[0] for m in module.modules() if isinstance(m, nn.Conv2d) and m.kernel_size[0] == 3]


@pytest.mark.parametrize("name", M.MODELS)
def test_one_training_step_with_aux(name: str) -> None:
    model = light(name, aux=True).train()
    x, y = torch.randn(2, 3, 33, 29), torch.randint(0, 3, (2, 33, 29))
    out, aux = model(x)
    assert out.shape == aux.shape == (2, 3, 33, 29)
    loss = F.cross_entropy(out, y) + 0.4 * F.cross_entropy(aux, y)
    loss.backward()
    assert torch.isfinite(loss)
    first, head = model.backbone.conv1.weight, next(model.head.parameters())
    assert first.grad.abs().sum() > 0 and head.grad.abs().sum() > 0
    before = first.detach().clone()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert not torch.equal(before, first)
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (2, 3, 33, 29)  # eval: no aux, just the logits


@pytest.mark.parametrize("name", M.MODELS)
@pytest.mark.parametrize("output_stride", [8, 16])
def test_eval_output_size_odd_inputs_batch_one(name: str, output_stride: int) -> None:
    model = light(name, output_stride).eval()
    with torch.no_grad():
        for h, w in [(17, 23), (37, 30)]:
            assert model(torch.randn(1, 3, h, w)).shape == (1, 3, h, w)


@pytest.mark.parametrize("name", ["deeplabv3", "deeplabv3plus"])
def test_training_with_batch_one_is_a_clear_error(name: str) -> None:
    model = light(name).train()
    with pytest.raises(ValueError, match="batch of at least 2"):
        model(torch.randn(1, 3, 32, 32))


def test_v1_v2_train_with_batch_one() -> None:
    for name in ("deeplabv1", "deeplabv2"):
        model = light(name).train()
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_deeplabv1_vgg16_largefov_matches_published_structure_and_20_5m_params() -> None:
    model = vgg_largefov()
    f = model.backbone.features
    assert [f[i].stride for i in (4, 9, 16)] == [2, 2, 2]          # pool1-3 keep their stride: output stride 8
    assert (f[23].stride, f[23].kernel_size, f[30].stride) == (1, 3, 1)  # pool4/pool5 at stride 1, 3×3 as in DeepLab
    assert dilations(f) == [1] * 10 + [2] * 3                      # conv5_x dilated by 2
    fc6, fc7 = model.head[0], model.head[3]
    assert (fc6.kernel_size, fc6.dilation, fc6.out_channels, fc7.out_channels) == ((3, 3), (12, 12), 1024, 1024)
    assert sum(p.numel() for p in model.parameters()) == 20_505_429  # published: 20.5M
    features = model.backbone.features(torch.randn(1, 3, 64, 48))
    assert features.shape[-2:] == (8, 6)


def test_deeplabv2_aspp_sums_four_branches_at_rates_6_12_18_24() -> None:
    model = light("deeplabv2")
    branches = model.head.branches
    assert len(branches) == 4 and [b.dilation[0] for b in branches] == [6, 12, 18, 24]
    assert all(b.out_channels == 3 and b.kernel_size == (3, 3) for b in branches)  # each branch outputs class scores
    x = torch.randn(2, 512, 5, 5)
    assert torch.allclose(model.head(x), sum(b(x) for b in branches), atol=1e-5)
    assert dilations(model.backbone.layer3) == [2] * 4 and dilations(model.backbone.layer4) == [4] * 4  # OS 8, no grid
    os16 = light("deeplabv2", 16)
    assert [b.dilation[0] for b in os16.head.branches] == [3, 6, 9, 12]  # same field of view at stride 16


@pytest.mark.parametrize("backbone, output_stride, rates, grid", [("resnet50", 16, [6, 12, 18], [2, 4, 8]),
                                                                  ("resnet18", 8, [12, 24, 36], [4, 8])])
def test_deeplabv3_aspp_branches_rates_bn_and_multi_grid(backbone: str, output_stride: int, rates: list[int],
                                                         grid: list[int]) -> None:
    """Multi-grid (1, 2, 4) times the block4 rate (2 at stride 16, 4 at 8); ResNet-18's block4 has two units."""
    model = light("deeplabv3", output_stride) if backbone == "resnet18" else \
        M.build_model("deeplabv3", 3, backbone=backbone, output_stride=output_stride)
    aspp = model.head[0]
    conv1x1, *atrous, pooling = aspp.branches
    assert len(aspp.branches) == 5 and conv1x1[0].kernel_size == (1, 1)
    assert [b[0].dilation[0] for b in atrous] == rates and all(b[0].kernel_size == (3, 3) for b in atrous)
    assert isinstance(pooling, M.ImagePooling) and isinstance(pooling[0], nn.AdaptiveAvgPool2d)
    assert all(any(isinstance(m, nn.BatchNorm2d) for m in b.modules()) for b in aspp.branches)
    project = aspp.project[0]
    assert (project.in_channels, project.out_channels, project.kernel_size) == (1280, 256, (1, 1))
    assert [blk.conv2.dilation[0] for blk in model.backbone.layer4] == grid
    strides = [m.stride[0] for m in model.backbone.layer4.modules() if isinstance(m, nn.Conv2d)]
    assert set(strides) == {1}
    model.eval()
    with torch.no_grad():
        stage_sizes = []
        x = torch.randn(1, 3, 64, 64)
        for stage in model.stages:
            for n in stage:
                x = model.backbone.get_submodule(n)(x)
            stage_sizes.append(x.shape[-1])
    assert stage_sizes[-1] == 64 // output_stride


def test_deeplabv3plus_decoder_uses_stride4_features_reduced_to_48() -> None:
    model = light("deeplabv3plus").eval()
    seen = {}
    model.decoder.reduce.register_forward_hook(lambda m, i, o: seen.update(low=i[0].shape, reduced=o.shape))
    model.decoder.fuse.register_forward_hook(lambda m, i, o: seen.update(fused_in=i[0].shape))
    with torch.no_grad():
        assert model(torch.randn(1, 3, 63, 41)).shape == (1, 3, 63, 41)
    assert seen["low"] == (1, 64, 16, 11)    # ResNet conv2_x (layer1) output at stride 4
    assert seen["reduced"][1] == 48
    assert seen["fused_in"][1] == 256 + 48


def test_backbone_keeps_torchvision_names_and_shapes() -> None:
    for name, ours in (("resnet18", light("deeplabv3").backbone.state_dict()),
                       ("vgg16", vgg_largefov().backbone.state_dict())):
        with torch.device("meta"):
            theirs = getattr(torchvision.models, name)().state_dict()
        assert set(ours) <= set(theirs) and all(ours[k].shape == theirs[k].shape for k in ours)
        assert {k.split(".")[0] for k in set(theirs) - set(ours)} <= {"fc", "classifier"}


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="output_stride"):
        M.build_model("deeplabv3", 3, backbone="resnet18", output_stride=32)
    with pytest.raises(ValueError, match="backbone"):
        M.build_model("deeplabv3", 3, backbone="alexnet")
    with pytest.raises(ValueError, match="multi-grid"):
        M.build_model("deeplabv2", 3, backbone="resnet18", multi_grid=(1, 2, 4))


def test_crf_raises_miou_of_noisy_blurred_prediction() -> None:
    before, after = ConfusionMatrix(6), ConfusionMatrix(6)
    for image, label, probs in CRF_DEMO.noisy_blurred_predictions(3):
        refined = CRF.crf_refine(probs, image, CRF.CRFParams(iterations=5))
        assert refined.shape == probs.shape and torch.allclose(refined.sum(1), torch.ones(1, 64, 64), atol=1e-4)
        before.update(probs, label)
        after.update(refined, label)
    b, a = before.compute()["miou"], after.compute()["miou"]
    assert a > b + 0.05, (b, a)


def test_crf_bilateral_kernel_stops_at_colour_edges_and_checks_inputs() -> None:
    image = torch.zeros(1, 3, 8, 8)
    image[..., 4:] = 255.0  # left half black, right half white
    offsets, weights = CRF.pairwise_weights(image, CRF.CRFParams(window=3, dilation=1, spatial_weight=0.0))
    right = weights[offsets.index((0, 1))][0, 0]
    assert right[0, 0] > 0.1 and right[0, 3] < 1e-6 * right[0, 0]  # same colour vs across the edge
    assert right[0, 7] == 0  # no neighbour outside the image
    assert torch.equal(CRF.crf_refine(torch.full((1, 2, 8, 8), 0.5), image, CRF.CRFParams(iterations=0)),
                       torch.full((1, 2, 8, 8), 0.5))
    with pytest.raises(ValueError, match="same size"):
        CRF.crf_refine(torch.rand(1, 2, 8, 8), torch.rand(1, 3, 8, 9))
    with pytest.raises(ValueError, match="odd window"):
        CRF.CRFParams(window=4)


TRAIN = load("07_deeplab", "train")
PREDICT = load("07_deeplab", "predict")


def test_criterion_adds_weighted_aux_loss_and_ignores_void() -> None:
    main, aux = torch.randn(2, 3, 5, 5), torch.randn(2, 3, 5, 5)
    target = torch.randint(0, 3, (2, 5, 5))
    target[:, 0] = 255
    ce = lambda x: F.cross_entropy(x, target, ignore_index=255)  # noqa: E731
    criterion = TRAIN.make_criterion(0.4)
    assert torch.allclose(criterion((main, aux), target), ce(main) + 0.4 * ce(aux))
    assert torch.allclose(criterion(main, target), ce(main))
    target[:] = 255
    target[0, 1, 1] = 2
    assert torch.allclose(criterion(main, target), -main[0, :, 1, 1].log_softmax(0)[2])


def test_train_then_predict_with_crf(tmp_path, monkeypatch) -> None:
    from PIL import Image

    out = tmp_path / "run"
    summary = TRAIN.main(["--data", "synthetic", "--model", "deeplabv3plus", "--backbone", "resnet18", "--aux",
                          "--synthetic-size", "8", "-b", "2", "--crop-size", "32", "--epochs", "1", "--limit-batches",
                          "2", "--output-dir", str(out), "--device", "cpu"])
    ckpt = torch.load(summary["checkpoint"], weights_only=True)
    assert ckpt["model_kwargs"] == {"backbone": "resnet18", "output_stride": 16, "aux": True}
    assert 0 <= summary["metrics"]["miou"] <= 1
    image = tmp_path / "odd.png"
    Image.fromarray(SyntheticSegmentation(size=1, image_size=64).sample(0)[0][:45, :37]).save(image)
    calls = []

    def spy(probs, rgb, params):
        calls.append((probs.shape, float(rgb.max()), params.iterations))
        return CRF.crf_refine(probs, rgb, params)

    monkeypatch.setattr(PREDICT, "crf_refine", spy)
    assert PREDICT.main([str(summary["checkpoint"]), str(image), "--output-dir", str(tmp_path / "pred"), "--crf",
                         "--crf-iterations", "2"]) == 0
    assert calls == [((1, 6, 45, 37), calls[0][1], 2)] and calls[0][1] > 1  # full-size probabilities, RGB in 0-255
    with Image.open(tmp_path / "pred" / "odd_mask.png") as mask:
        assert mask.mode == "P" and mask.size == (37, 45)
    assert (tmp_path / "pred" / "odd_overlay.png").exists()
    with pytest.raises(TRAIN.UserError, match="odd window"):
        PREDICT.main([str(summary["checkpoint"]), str(image), "--crf", "--crf-window", "4"])


@pytest.mark.parametrize("flags, message", [
    (["--model", "deeplabv3", "-b", "1"], "--batch-size 1 cannot train deeplabv3"),
    (["--model", "deeplabv2", "--multi-grid", "1", "2"], "V3/V3\\+ option"),
    (["--model", "deeplabv3", "--backbone", "resnet18", "--weights-backbone", "ResNet50_Weights.IMAGENET1K_V1"],
     "does not fit --backbone resnet18"),
    (["--crop-size", "0"], "--crop-size must be at least 1"),
    (["--model", "deeplabv2", "--atrous-rates", "1", "2", "3"], "--atrous-rates for deeplabv2 takes 4 rate"),
    (["--model", "deeplabv1", "--atrous-rates", "0"], "--atrous-rates for deeplabv1 takes 1 rate\\(s\\) of at least 1"),
    (["--backbone", "light", "--weights-backbone", "ResNet18_Weights.IMAGENET1K_V1"],
     "--backbone light has no torchvision weights"),
])
def test_bad_training_flags_are_one_line_errors(tmp_path, flags: list[str], message: str) -> None:
    with pytest.raises(TRAIN.UserError, match=message):
        TRAIN.main(["--data", "synthetic", "--synthetic-size", "4", "--output-dir", str(tmp_path), *flags])


def test_backbone_weights_load_by_name_and_vgg_fc_decimation(monkeypatch) -> None:
    source = torchvision.models.resnet18().state_dict()
    monkeypatch.setattr(weights, "torchvision_state_dict", lambda name, flag: source)
    model = M.build_model("deeplabv3", 3, backbone="resnet18")
    TRAIN.load_backbone_weights(model, "ResNet18_Weights.IMAGENET1K_V1", "resnet18", log=None)
    assert all(torch.equal(v, source[k]) for k, v in model.backbone.state_dict().items())
    fc6 = torch.zeros(4096, 25088)
    fc6.view(4096, 512, 7, 7)[4, 3, 3, 6] = 7.0  # channel 4 → 1; taps 3, 6 of the 7×7 → 1, 2 of the 3×3
    fc7 = torch.zeros(4096, 4096)
    fc7[8, 12] = 5.0
    head = TRAIN.decimate_vgg_fc({"classifier.0.weight": fc6, "classifier.0.bias": torch.arange(4096.0),
                                  "classifier.3.weight": fc7, "classifier.3.bias": torch.arange(4096.0)})
    assert head["0.weight"].shape == (1024, 512, 3, 3) and head["0.weight"][1, 3, 1, 2] == 7.0
    assert head["0.weight"].sum() == 7.0 and head["3.weight"].shape == (1024, 1024, 1, 1)
    assert head["3.weight"][2, 3, 0, 0] == 5.0 and head["3.bias"][1] == 4.0


def test_backbone_weights_from_local_files(tmp_path) -> None:
    """Offline users pass a file: a torchvision state_dict, or any checkpoint (a whole DeepLab's `backbone.` part)."""
    source = torchvision.models.resnet18().state_dict()
    torch.save(source, tmp_path / "resnet18.pth")
    torch.save({"model": {f"backbone.{k}": v for k, v in source.items() if not k.startswith("fc.")},
                "epoch": 3}, tmp_path / "deeplab.pth")
    for name in ("resnet18.pth", "deeplab.pth"):
        model = M.build_model("deeplabv3", 3, backbone="resnet18")
        lines = []
        TRAIN.load_backbone_weights(model, str(tmp_path / name), "resnet18", log=lines.append)
        assert all(torch.equal(v, source[k]) for k, v in model.backbone.state_dict().items())
        assert "(100.0% of parameters)" in lines[0].splitlines()[0]
    with pytest.raises(UserError, match=r"^--weights-backbone \S*nowhere.pth: no such file"):
        TRAIN.load_backbone_weights(model, str(tmp_path / "nowhere.pth"), "resnet18", log=None)


def test_train_accepts_a_backbone_file_and_names_the_flag_when_it_is_missing(tmp_path, capsys) -> None:
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "resnet18.pth")
    args = ["--data", "synthetic", "--model", "deeplabv3", "--backbone", "resnet18", "--synthetic-size", "4", "-b", "2",
            "--crop-size", "32", "--epochs", "1", "--limit-batches", "1"]
    TRAIN.main([*args, "--weights-backbone", str(tmp_path / "resnet18.pth"), "--output-dir", str(tmp_path / "run")])
    assert "loaded 60/60 parameter tensors (100.0% of parameters)" in capsys.readouterr().out
    with pytest.raises(UserError, match="--weights-backbone .*nowhere.pth: no such file"):
        TRAIN.main([*args, "--weights-backbone", str(tmp_path / "nowhere.pth"), "--output-dir", str(tmp_path / "x")])
    with pytest.raises(UserError, match="does not fit --backbone resnet18"):
        TRAIN.main([*args, "--weights-backbone", "ResNet50_Weights.IMAGENET1K_V1", "--output-dir", str(tmp_path / "y")])


# --- Mutation gaps (mutmut): every rate, channel count and wiring the papers define, on meta where only shapes matter.

def layers(module: nn.Module) -> list[tuple]:
    """The leaf layers in order, with what the papers specify of each (ReLU's in-place flag is only a memory saving)."""
    out = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            out.append(("conv", m.in_channels, m.out_channels, m.kernel_size, m.dilation[0], m.padding, m.stride[0],
                        m.bias is not None))
        elif isinstance(m, nn.BatchNorm2d):
            out.append(("bn", m.num_features))
        elif isinstance(m, nn.ReLU):
            out.append(("relu",))
        elif isinstance(m, nn.Dropout):
            out.append(("dropout", m.p))
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            out.append(("global pool", m.output_size))
        elif not list(m.children()):
            out.append((type(m).__name__,))
    return out


def conv(cin: int, cout: int, k: int = 1, rate: int = 1, bias: bool = False) -> tuple:
    """A stride-1 conv whose padding keeps the size: r(k − 1)/2 (the notes' 膨胀卷积 formula)."""
    return ("conv", cin, cout, (k, k), rate, (rate * (k - 1) // 2,) * 2, 1, bias)


def cbr(cin: int, cout: int, k: int = 1, rate: int = 1) -> list[tuple]:
    """conv (no bias: the BN after it has one) → BN → ReLU."""
    return [conv(cin, cout, k, rate), ("bn", cout), ("relu",)]


def aspp_v3(cin: int, rates: tuple[int, ...]) -> list[tuple]:
    return [*cbr(cin, 256), *(t for r in rates for t in cbr(cin, 256, 3, r)), ("global pool", 1), *cbr(cin, 256),
            *cbr(5 * 256, 256), ("dropout", 0.1)]


def test_every_head_layer_by_layer() -> None:
    """V1 LargeFOV, V2's four summed classifiers, V3's ASPP (1×1, three 3×3, image pooling, BN, 1×1 projection of the
    concatenation), the V3+ decoder (1×1 → 48, two 3×3 → 256, 1×1 classes) and the aux FCN head (torchvision's)."""
    with torch.device("meta"):
        models = {name: M.build_model(name, 3, backbone="resnet18", aux=True) for name in M.MODELS}
    assert layers(models["deeplabv1"].head) == [
        conv(512, 1024, 3, 12, bias=True), ("relu",), ("dropout", 0.5),           # fc6: 3×3, dilation 12, 1024
        conv(1024, 1024, bias=True), ("relu",), ("dropout", 0.5),                 # fc7: 1×1
        conv(1024, 3, bias=True)]                                                 # fc8: scores
    assert layers(models["deeplabv2"].head) == [conv(512, 3, 3, r, bias=True) for r in (6, 12, 18, 24)]
    assert layers(models["deeplabv3"].head) == [*aspp_v3(512, (6, 12, 18)), conv(256, 3, bias=True)]
    assert layers(models["deeplabv3plus"].head) == aspp_v3(512, (6, 12, 18))
    decoder = models["deeplabv3plus"].decoder
    assert layers(decoder.reduce) == cbr(64, 48)                                  # ResNet conv2_x: 64 channels
    assert layers(decoder.fuse) == [*cbr(256 + 48, 256, 3), *cbr(256, 256, 3)]
    assert layers(decoder.classifier) == [conv(256, 3, bias=True)]
    for name, model in models.items():
        assert layers(model.aux) == [*cbr(256, 64, 3), ("dropout", 0.1), conv(64, 3, bias=True)]  # on layer3 (256)
        assert (model.decoder is not None) == (name == "deeplabv3plus")
    with torch.device("meta"):
        plain = M.build_model("deeplabv3plus", 3, backbone="resnet50")
    assert plain.aux is None and layers(plain.decoder.reduce) == cbr(256, 48)     # ResNet-50 conv2_x: 256 channels
    assert layers(plain.head)[0] == conv(2048, 256)


# (version, output stride) → 3×3 dilations of ResNet-101's layer3 and layer4 (23 and 3 blocks) or VGG16's conv4_x and
# conv5_x, and the head's rates: the field of view in pixels (rate × stride) is the published one at both strides.
RATES = [
    ("deeplabv1", 8, [1] * 3, [2] * 3, (12,)), ("deeplabv1", 16, [1] * 3, [1] * 3, (6,)),
    ("deeplabv2", 8, [2] * 23, [4] * 3, (6, 12, 18, 24)), ("deeplabv2", 16, [1] * 23, [2] * 3, (3, 6, 9, 12)),
    ("deeplabv3", 16, [1] * 23, [2, 4, 8], (6, 12, 18)), ("deeplabv3", 8, [2] * 23, [4, 8, 16], (12, 24, 36)),
    ("deeplabv3plus", 16, [1] * 23, [2, 4, 8], (6, 12, 18)), ("deeplabv3plus", 8, [2] * 23, [4, 8, 16], (12, 24, 36)),
]


def head_rates(model: nn.Module) -> list[int]:
    head = model.head[0] if model.version == "deeplabv3" else model.head
    convs = [head[0]] if model.version == "deeplabv1" else \
        list(head.branches) if model.version == "deeplabv2" else [b[0] for b in head.branches[1:-1]]
    assert all(c.kernel_size == (3, 3) and c.padding == c.dilation for c in convs)
    return [c.dilation[0] for c in convs]


@pytest.mark.parametrize("name, output_stride, stage3, stage4, rates", RATES)
def test_default_backbones_rates_and_output_stride(name: str, output_stride: int, stage3: list[int],
                                                   stage4: list[int], rates: tuple[int, ...]) -> None:
    """Published defaults (V1 VGG16 OS 8, V2 ResNet-101 OS 8, V3/V3+ ResNet-101 OS 16, multi-grid 1 2 4 for V3 only),
    DilatedFCN (from the dilated stage on: stride 1, every 3×3 dilated with padding = dilation) and the feature map at
    the output stride."""
    with torch.device("meta"):
        model = M.build_model(name, 3, **({} if output_stride == M.DEFAULTS[name][1] else
                                          {"output_stride": output_stride}))
    backbone = "vgg16" if name == "deeplabv1" else "resnet101"
    assert (model.version, model.backbone_name, model.output_stride) == (name, backbone, output_stride)
    assert model.multi_grid == ((1, 2, 4) if name in ("deeplabv3", "deeplabv3plus") else (1,))
    assert model.rates == rates and head_rates(model) == list(rates)
    convs = [m for m in model.backbone.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.padding[0] == m.dilation[0] * (m.kernel_size[0] - 1) // 2 for m in convs)
    if name == "deeplabv1":
        f = model.backbone.features
        assert dilations(f) == [1] * 7 + stage3 + stage4
        pools = [(m.kernel_size, m.stride, m.padding) for m in f if isinstance(m, nn.MaxPool2d)]
        assert pools == [(2, 2, 0)] * 3 + [(3, 1, 1) if output_stride == 8 else (2, 2, 0), (3, 1, 1)]
    else:
        assert dilations(model.backbone.layer3) == stage3 and dilations(model.backbone.layer4) == stage4
        strides = lambda layer: [m.stride[0] for m in layer.modules() if isinstance(m, nn.Conv2d)]  # noqa: E731
        assert set(strides(model.backbone.layer4)) == {1}
        assert set(strides(model.backbone.layer3)) == ({1} if output_stride == 8 else {1, 2})
    sizes = []
    with torch.no_grad():
        x = torch.empty(1, 3, 64, 64, device=next(model.backbone.parameters()).device)
        for stage in model.stages:
            for n in stage:
                x = model.backbone.get_submodule(n)(x)
            sizes.append(x.shape[-1])
    assert sizes == [16, 8, 64 // min(16, output_stride), 64 // output_stride]


def test_multi_grid_is_unit_rates_times_the_block4_rate() -> None:
    """Multi-grid (r1, r2, r3) × the stage rate (2 at OS 16, 4 at OS 8), for V3 and V3+; a shorter stage takes the
    first rates (ResNet-18: two blocks), a longer one repeats the last."""
    with torch.device("meta"):
        for name in ("deeplabv3", "deeplabv3plus"):
            model = M.build_model(name, 3, multi_grid=(1, 2, 1))
            assert model.multi_grid == (1, 2, 1) and dilations(model.backbone.layer4) == [2, 4, 2]
            assert dilations(M.build_model(name, 3, output_stride=8, multi_grid=[3]).backbone.layer4) == [12] * 3
            resnet18 = M.build_model(name, 3, backbone="resnet18").backbone.layer4
            assert dilations(resnet18) == [2, 2, 4, 4]  # a basic block's two 3×3 convs: both at the unit's rate
    units = [nn.Conv2d(1, 1, 3, stride=2, padding=1) for _ in range(4)]
    M.dilate_(units, [1, 3])
    assert [(u.dilation[0], u.padding[0], u.stride[0]) for u in units] == [(1, 1, 1), (3, 3, 1), (3, 3, 1), (3, 3, 1)]


@pytest.mark.parametrize("name", M.BACKBONES)
def test_backbone_stages_are_the_trunk_in_order_at_strides_4_8_16_32(name: str) -> None:
    """make_backbone: the 4 stages cover the trunk in order; stage k ends at stride 4·2^k; the channels it reports are
    those of stage 1 (decoder), 3 (aux) and 4 (head)."""
    with torch.device("meta"):
        net, stages, channels = M.make_backbone(name)
    names = [n for stage in stages for n in stage]
    top = [f"features.{i}" for i in range(len(net.features))] if name == "vgg16" else [n for n, _ in net.named_children()]
    assert names == top
    x = torch.empty(1, 3, 64, 64, device=next(net.parameters()).device)
    shapes = []
    for stage in stages:
        for n in stage:
            x = net.get_submodule(n)(x)
        shapes.append(tuple(x.shape[1:]))
    low, mid, out = channels
    assert [s[1] for s in shapes] == [16, 8, 4, 2]
    assert (shapes[0][0], shapes[2][0], shapes[3][0]) == (low, mid, out)
    assert channels == {"vgg16": (256, 512, 512), "resnet18": (64, 256, 512), "light": (16, 64, 128)}.get(
        name, (256, 1024, 2048))


def test_vgg16_backbone_is_torchvision_initialised_without_building_its_classifier() -> None:
    """The 124M-parameter classifier is built on the meta device (it is deleted): nothing of it is allocated or drawn
    from the random generator, so the seed gives the convolutions torchvision's VGG initialisation directly."""
    torch.manual_seed(0)
    net, _, _ = M.make_backbone("vgg16")
    torch.manual_seed(0)
    expected = nn.init.kaiming_normal_(torch.empty(64, 3, 3, 3), mode="fan_out", nonlinearity="relu")
    assert torch.equal(net.features[0].weight, expected)
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    assert len(convs) == 13 and all(not m.bias.any() and m.weight.device.type == "cpu" for m in convs)
    assert not hasattr(net, "classifier") and not hasattr(net, "avgpool")


def test_outputs_are_the_head_scores_bilinearly_upsampled() -> None:
    """V1-V3: the scores at the output stride bilinearly upsampled to the input (align_corners=False), aux too; V3+: the
    decoder's input is the ASPP output upsampled to the stride-4 map, concatenated with the 48 reduced channels."""
    x = torch.randn(2, 3, 37, 30)
    up = lambda t, size: F.interpolate(t, size=size, mode="bilinear", align_corners=False)  # noqa: E731
    for name in ("deeplabv2", "deeplabv3plus"):
        model = light(name, aux=True)
        seen = {}

        def hook(key: str, take_input: bool = False):
            return lambda m, i, o: seen.update({key: i[0] if take_input else o})

        watched = [(model.head, "head", False), (model.aux, "aux", False), (model.aux, "aux_in", True),
                   (model.backbone.layer1, "low", False), (model.backbone.layer3, "layer3", False)]
        if model.decoder is not None:
            watched += [(model.decoder, "decoded", False), (model.decoder.fuse, "fuse_in", True)]
        handles = [m.register_forward_hook(hook(key, take_input)) for m, key, take_input in watched]
        try:
            with torch.no_grad():
                out, aux = model.train()(x)
                assert torch.equal(seen["aux_in"], seen["layer3"]) and torch.allclose(aux, up(seen["aux"], (37, 30)))
                out = model.eval()(x)
        finally:
            for h in handles:
                h.remove()
        scores = seen["head"] if model.decoder is None else seen["decoded"]
        assert torch.allclose(out, up(scores, (37, 30)), atol=1e-6)
        if model.decoder is not None:  # stride 4: 37×30 → 19×15 (conv1) → 10×8 (max pool)
            assert seen["fuse_in"].shape == (2, 256 + 48, 10, 8) and seen["decoded"].shape == (2, 3, 10, 8)
            assert torch.allclose(seen["fuse_in"][:, :256], up(seen["head"], (10, 8)), atol=1e-6)
            with torch.no_grad():
                assert torch.allclose(seen["fuse_in"][:, 256:], model.decoder.reduce(seen["low"]), atol=1e-6)


def test_aspp_concatenates_branches_and_image_pooling_is_the_global_mean() -> None:
    """V3 ASPP: project(concat of the 5 branches); the pooling branch is conv-BN-ReLU of the image mean, the same at
    every position (so any upsampling of it is a broadcast)."""
    torch.manual_seed(0)
    aspp = M.ASPP(16, (1, 2, 3)).eval()
    with torch.no_grad():
        x = torch.randn(2, 16, 5, 7)
        outs = [b(x) for b in aspp.branches]
        assert all(o.shape == (2, 256, 5, 7) for o in outs)
        assert torch.allclose(aspp(x), aspp.project(torch.cat(outs, dim=1)), atol=1e-6)
        pooled = x.mean((2, 3), keepdim=True)
        for layer in list(aspp.branches[-1])[1:]:
            pooled = layer(pooled)
        assert torch.allclose(outs[-1], pooled.expand(-1, -1, 5, 7), atol=1e-6) and pooled.std() > 0
        assert all((o >= 0).all() and (o > 0).any() for o in outs)  # each branch ends in a ReLU
    with pytest.raises(ValueError, match=r"^DeepLab V3/V3\+ image pooling: BatchNorm over a 1×1 pooled map needs a "
                                         r"batch of at least 2 in training \(got 1\)"):
        aspp.branches[-1].train()(x[:1])


def test_constructor_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match=r"^unknown model 'deeplabv9'; choose from \('deeplabv1', "):
        M.DeepLab("deeplabv9", 3)
    with pytest.raises(ValueError, match=r"^multi-grid is a DeepLab V3 idea; V1/V2 dilate every unit of a stage with "
                                         r"the same rate$"):
        M.DeepLab("deeplabv2", 3, backbone="resnet18", multi_grid=(1, 2, 4))


def test_light_backbone_is_resnet18_at_quarter_width_with_its_names_and_heads_at_quarter_width() -> None:
    light_net, resnet = M.light_resnet(), torchvision.models.resnet18()
    ours = {k: v.shape for k, v in light_net.state_dict().items()}
    theirs = {k: v.shape for k, v in resnet.state_dict().items() if not k.startswith("fc.")}
    assert list(ours) == list(theirs)  # the same layers, in the same order, under the same names
    for k, shape in theirs.items():  # every channel count divided by 4 (the 3 RGB inputs and 7×7/3×3 kernels kept)
        expected = [n // 4 if i < 2 and n >= 64 else n for i, n in enumerate(shape)] if len(shape) else []
        assert list(ours[k]) == expected, k
    v3p = M.build_model("deeplabv3plus", 5, backbone="light", output_stride=8)
    assert v3p.head.project[0].out_channels == 64 and v3p.decoder.reduce[0].out_channels == 12
    assert v3p.decoder.fuse[0][0].in_channels == 64 + 12 and v3p.decoder.classifier.in_channels == 64
    assert M.build_model("deeplabv1", 5, backbone="light").head[0].out_channels == 256
    assert M.build_model("deeplabv1", 5, backbone="resnet18").head[0].out_channels == 1024  # the others: as published
    assert v3p.eval()(torch.zeros(1, 3, 41, 37)).shape == (1, 5, 41, 37)
    units = [*v3p.backbone.layer3, *v3p.backbone.layer4]
    assert [u.conv1.dilation[0] for u in units] == [2, 2, 4, 8]  # stride 8: layer3 at rate 2, layer4 multi-grid 1, 2


@pytest.mark.parametrize("name, rates", [("deeplabv1", [3]), ("deeplabv2", [1, 2, 3, 4]), ("deeplabv3", [2, 4, 7]),
                                         ("deeplabv3plus", [1, 5, 9])])
def test_atrous_rates_replace_the_published_ones_and_are_checked(name: str, rates: list[int]) -> None:
    model = M.build_model(name, 4, backbone="light", output_stride=8, atrous_rates=rates)
    assert list(model.rates) == rates
    assert dilations(model.head) == rates  # every 3×3 of the head (LargeFOV's fc6, ASPP's atrous branches)
    with pytest.raises(ValueError, match=f"{name} has {len(rates)} atrous rate"):
        M.build_model(name, 4, backbone="light", atrous_rates=[*rates, 2])


def test_compare_scales_the_rates_to_the_feature_map_and_runs_the_ablation(tmp_path, capsys) -> None:
    compare = load("07_deeplab", "compare")
    for version, rates in M.HEAD_RATES.items():  # at the papers' 513 crop: the published rates at stride 8
        assert compare.scaled_rates(version, 513) == [r * rates[1] // 8 for r in rates[0]]
    assert compare.scaled_rates("deeplabv2", 96) == [1, 2, 3, 4] and compare.scaled_rates("deeplabv3", 96) == [2, 4, 7]
    assert compare.scaled_rates("deeplabv1", 8) == [1]  # never below 1
    rows, crf = compare.main(["--seeds", "1", "--epochs", "1", "--synthetic-size", "4", "-b", "2", "--image-size", "46",
                              "--crf-images", "1", "--output-dir", str(tmp_path / "runs"), "--assets", str(tmp_path)])
    names = [v.name for v in compare.variants(46)]
    assert [r["variant"] for r in rows] == names
    assert [r["variant"] for r in crf] == ["V1 LargeFOV", "V1 LargeFOV + CRF", "V2 ASPP", "V2 ASPP + CRF"]
    args = {n: torch.load(tmp_path / "runs" / n / "seed0" / "last.pth", weights_only=True)["args"] for n in names}
    assert all(a["output_stride"] == 8 and a["backbone"] == "light" and a["synthetic_task"] == "context"
               and a["epochs"] == 1 and a["image_size"] == 46 for a in args.values())
    assert [a["model"] for a in args.values()] == list(M.MODELS) and args["V3"]["multi_grid"] is None  # 1, 2, 4
    assert args["V2 ASPP"]["atrous_rates"] == compare.scaled_rates("deeplabv2", 46)
    out = capsys.readouterr().out
    assert "| variant | mIoU | boundary IoU (2 px) | dot_a/dot_b IoU (context) | seeds | time / run |" in out
    assert "| V2 ASPP + CRF | " in out
    for name in ("compare.png", "versions.png"):
        assert (tmp_path / name).stat().st_size > 10_000
