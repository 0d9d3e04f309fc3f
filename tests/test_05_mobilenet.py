"""05_mobilenet: paper tables (MobileNet V1 Table 6/7), 参数计算, 倒残差 shortcut rule, torchvision parity, train/predict."""
from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from common.complexity import count_params_and_macs
from common.errors import UserError
from common.synthetic import SyntheticShapes, write_imagefolder
from util import load, training_step_ops

M = load("05_mobilenet", "model")


# MobileNet paper, Table 6 (width multiplier α at 224) and Table 7 (resolution at α = 1.0): (params M, mult-adds M).
@pytest.mark.parametrize("alpha, params_m, macs_m",
                         [(1.0, 4.2, 569), (0.75, 2.6, 325), (0.5, 1.3, 149), (0.25, 0.5, 41)])
def test_v1_width_multiplier_matches_paper_table(alpha: float, params_m: float, macs_m: float) -> None:
    cost = count_params_and_macs(M.build_model("mobilenet_v1", 1000, width_mult=alpha), 224)
    assert cost["macs"] / 1e6 == pytest.approx(macs_m, rel=0.02)
    # The paper prints parameters to 0.1M (our 0.47M is printed as 0.5M): within 2%, or within its rounding (±0.05M).
    assert abs(cost["params"] / 1e6 - params_m) <= max(0.02 * params_m, 0.05)
    assert round(cost["params"] / 1e6, 1) == params_m


@pytest.mark.parametrize("size, macs_m", [(224, 569), (192, 418), (160, 290), (128, 186)])
def test_v1_resolution_multiplier_matches_paper_table(size: int, macs_m: int) -> None:
    cost = count_params_and_macs(M.build_model("mobilenet_v1", 1000), size)
    assert cost["macs"] / 1e6 == pytest.approx(macs_m, rel=0.02)
    assert isinstance(cost["macs"], int) and isinstance(cost["params"], int)  # counts, never fractions
    assert cost["params"] / 1e6 == pytest.approx(4.2, rel=0.02)  # ρ changes cost, never parameters


def test_v1_blocks_are_depthwise_then_pointwise() -> None:
    """DW卷积的卷积核channel为1 (groups = channels), PW卷积的卷积核大小为1."""
    model = M.build_model("mobilenet_v1", 10, width_mult=0.5)
    blocks = list(model.features)[1:]
    assert len(blocks) == 13
    for block in blocks:
        dw, pw = block[0][0], block[1][0]
        assert dw.groups == dw.in_channels == dw.out_channels and dw.weight.shape[1:] == (1, 3, 3)
        assert pw.kernel_size == (1, 1) and pw.groups == 1


@pytest.mark.parametrize("m_ch, n_ch, k, f", [(32, 64, 3, 112), (512, 512, 3, 14), (16, 24, 5, 7)])
def test_separable_cost_formula_and_real_layers(m_ch: int, n_ch: int, k: int, f: int) -> None:
    """参数计算: DW+PW / standard = 1/N + 1/K² for parameters and mult-adds, checked against real layers."""
    cost = M.separable_cost(m_ch, n_ch, k, f)
    standard = nn.Conv2d(m_ch, n_ch, k, padding=k // 2, bias=False)
    separable = nn.Sequential(nn.Conv2d(m_ch, m_ch, k, padding=k // 2, groups=m_ch, bias=False),
                              nn.Conv2d(m_ch, n_ch, 1, bias=False))
    counted_std = count_params_and_macs(standard, f, in_channels=m_ch)
    counted_sep = count_params_and_macs(separable, f, in_channels=m_ch)
    assert (cost["standard_params"], cost["standard_macs"]) == (counted_std["params"], counted_std["macs"])
    assert (cost["separable_params"], cost["separable_macs"]) == (counted_sep["params"], counted_sep["macs"])
    exact = Fraction(1, n_ch) + Fraction(1, k * k)
    assert Fraction(counted_sep["params"], counted_std["params"]) == exact
    assert Fraction(counted_sep["macs"], counted_std["macs"]) == exact
    assert cost["ratio"] == pytest.approx(cost["ratio_formula"])


def test_counter_counts_linear_and_transposed_conv() -> None:
    model = nn.Sequential(nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1, bias=False), nn.Flatten(),
                          nn.Linear(2 * 16 * 16, 5))
    cost = count_params_and_macs(model, 8, in_channels=4)
    assert cost["macs"] == 4 * 8 * 8 * 2 * 16 + 512 * 5
    assert cost["params"] == 4 * 2 * 16 + 512 * 5 + 5


def test_v2_state_dict_equals_torchvision_and_outputs_match() -> None:
    torch.manual_seed(0)
    reference = torchvision.models.mobilenet_v2().eval()
    ours = M.build_model("mobilenet_v2", 1000).eval()
    assert sum(p.numel() for p in ours.parameters()) == 3_504_872
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}
    with torch.no_grad():  # give BN non-trivial running stats so the comparison covers them
        for module in reference.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)
    cost = count_params_and_macs(ours, 224)  # paper Table 4: 300M mult-adds; torchvision's meta says 0.301 GOPs
    ops = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.meta["_ops"]
    assert cost["macs"] / 1e9 == pytest.approx(ops, rel=0.01)


def test_v2_runs_exactly_torchvisions_operators() -> None:
    """Same operators on the same shapes as torchvision's model (the benchmark's step-time ratio ≈ 1 by construction)."""
    x = torch.randn(2, 3, 32, 32)
    ours, reference = M.build_model("mobilenet_v2", 10), torchvision.models.mobilenet_v2(num_classes=10)
    assert training_step_ops(ours, x) == training_step_ops(reference, x)


@pytest.mark.parametrize("width", [0.35, 0.75, 1.3])
def test_v2_width_mult_rounds_to_multiples_of_8_like_torchvision(width: float) -> None:
    ours = M.build_model("mobilenet_v2", 10, width_mult=width)
    reference = torchvision.models.mobilenet_v2(num_classes=10, width_mult=width)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}
    assert all(m.out_channels % 8 == 0 for m in ours.modules() if isinstance(m, nn.Conv2d) and m.groups == 1)


def test_v2_shortcut_exactly_when_stride_1_and_shapes_match() -> None:
    """shortcut连接条件: checked on behaviour: zero the projection's BN so conv(x) = 0; then block(x) is x or 0."""
    model = M.build_model("mobilenet_v2", 10).eval()
    blocks = [b for b in model.features if isinstance(b, M.InvertedResidual)]
    used = []
    for block in blocks:
        dw = next(m for m in block.conv.modules() if isinstance(m, nn.Conv2d) and m.groups > 1)
        in_ch, out_ch = block.conv[0][0].in_channels, block.conv[-2].out_channels
        expected = dw.stride == (1, 1) and in_ch == out_ch
        nn.init.zeros_(block.conv[-1].weight)
        nn.init.zeros_(block.conv[-1].bias)
        x = torch.randn(1, in_ch, 8, 8)
        with torch.no_grad():
            y = block(x)
        assert torch.equal(y, x) if expected else not y.any()
        used.append(expected)
    assert sum(used) == 10 and len(used) == 17
    # The notes' example: the first 96-channel bottleneck (64 → 96, stride 1) has no shortcut, the second (96 → 96) has.
    first_96 = next(i for i, b in enumerate(blocks) if b.conv[-2].out_channels == 96)
    assert (used[first_96], used[first_96 + 1]) == (False, True)


NOTES_PRINTOUT = """\
 (conv): Sequential(
        (0): ConvBNReLU(
          (0): Conv2d(24, 144, kernel_size=(1, 1), stride=(1, 1), bias=False)
          (1): BatchNorm2d(144, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
          (2): ReLU6(inplace=True)
        )
        (1): ConvBNReLU(
          (0): Conv2d(144, 144, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), groups=144, bias=False)
          (1): BatchNorm2d(144, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
          (2): ReLU6(inplace=True)
        )
        (2): Conv2d(144, 24, kernel_size=(1, 1), stride=(1, 1), bias=False)
        (3): BatchNorm2d(24, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
      )"""


def test_v2_block_prints_like_the_notes() -> None:
    """The 24 → 144 → 144 → 24 block (features[3]) prints as in the notes (newer torch adds `bias=True` to BN)."""
    def norm(text: str) -> list[str]:
        return [re.sub(r", bias=True(?=, track)", "", line.strip()) for line in text.strip().splitlines()]

    printed = "(conv): " + repr(M.build_model("mobilenet_v2", 1000).features[3].conv)
    assert norm(printed) == norm(NOTES_PRINTOUT)


@pytest.mark.parametrize("name", M.MODELS)
def test_every_model_forward_and_one_training_step(name: str) -> None:
    torch.manual_seed(0)
    model = M.build_model(name, 5, width_mult=0.5)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.classifier[1].weight.detach().clone()
    loss = nn.functional.cross_entropy(model.train()(x), y)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and not torch.equal(before, model.classifier[1].weight)
    assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 5)


def test_unknown_model_name() -> None:
    with pytest.raises(ValueError, match="mobilenet_v3"):
        M.build_model("mobilenet_v3", 10)


# ------------------------------------------------------------------------------------------ train.py / predict.py
FAST = ["--data", "synthetic", "--synthetic-size", "48", "-b", "16", "--epochs", "1", "--print-freq", "2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mobilenet_run")
    load("05_mobilenet", "train").main([*FAST, "--width-mult", "0.25", "--output-dir", str(out)])
    return out / "last.pth"


def test_predict_reads_a_checkpoint_made_by_train(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ckpt = torch.load(trained, weights_only=True)
    assert ckpt["model_name"] == "mobilenet_v2" and ckpt["model_kwargs"] == {"width_mult": 0.25}
    assert ckpt["preprocess"]["mean"] == [0.485, 0.456, 0.406] and ckpt["preprocess"]["resize"] == [32, 32]
    image = tmp_path / "disk.png"
    Image.fromarray(SyntheticShapes(1, image_size=48).data[0]).save(image)
    capsys.readouterr()
    assert load("05_mobilenet", "predict").main([str(trained), str(image), "--topk", "3"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{image}: ") and line.count("(") == 3
    assert all(name.split(" (")[0] in ckpt["class_names"] for name in line.split(": ", 1)[1].split(", "))


def test_imagefolder_weights_with_new_head_and_frozen_features(trained: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    """Fine-tuning recipe: 10-class checkpoint → 3-class ImageFolder; the head is replaced (shape-matched loading skips
    it), the frozen features keep the source weights exactly."""
    for split, n in (("train", 12), ("val", 6)):
        write_imagefolder(SyntheticShapes(n, image_size=40, num_classes=3, split=split), tmp_path / "flowers" / split)
    capsys.readouterr()
    load("05_mobilenet", "train").main(["--data", "imagefolder", "--data-path", str(tmp_path / "flowers"),
                                        "--image-size", "32", "-b", "6", "--epochs", "1", "--width-mult", "0.25",
                                        "--weights", str(trained), "--freeze-features",
                                        "--output-dir", str(tmp_path / "o")])
    assert "shape-mismatched 2" in capsys.readouterr().out  # classifier.1.weight / .bias: 10 → 3 classes
    source = torch.load(trained, weights_only=True)["model"]
    tuned = torch.load(tmp_path / "o" / "last.pth", weights_only=True)
    assert tuned["class_names"] == ["disk", "square", "triangle"] and tuned["preprocess"]["crop"] == 32
    assert tuned["model"]["classifier.1.weight"].shape == (3, 1280)
    frozen = [k for k in source if k.startswith("features.")]  # BatchNorm statistics stay the source's too
    assert any(k.endswith("running_var") for k in frozen)
    assert frozen and all(torch.equal(source[k], tuned["model"][k]) for k in frozen)


@pytest.mark.parametrize("args, message", [(["--width-mult", "0"], "--width-mult"),
                                           (["--image-size", "16"], "--image-size"),
                                           (["--data", "imagefolder"], "train")])
def test_bad_arguments_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        load("05_mobilenet", "train").main([*FAST, "--data-path", str(tmp_path / "none"),
                                            "--output-dir", str(tmp_path / "o"), *args])


# ------------------------------------------------------------------------------------------ α rounding, defaults, init
def test_make_divisible_is_torchvisions_rule() -> None:
    """Round to the nearest multiple of 8 (at least 8), one step up when that drops more than 10%: torchvision's
    `_make_divisible` for every value on a fine grid, with the default divisor 8 and with others."""
    from torchvision.models._utils import _make_divisible as reference

    values = [i / 8 for i in range(1, 8 * 400)]
    assert [M._make_divisible(v) for v in values] == [reference(v, 8) for v in values]
    for divisor in (4, 16):
        assert [M._make_divisible(v, divisor) for v in values] == [reference(v, divisor) for v in values]
    assert (M._make_divisible(8 / 0.9), M._make_divisible(8 / 0.9 + 1e-6)) == (8, 16)  # exactly 10% less is still fine
    assert [M._make_divisible(v) for v in (3, 11.9, 99, 100)] == [8, 16, 96, 104]  # 11.9 → 8 would drop 33%


@pytest.mark.parametrize("width", [1.003, 1.1, 1.4])
def test_v2_first_and_last_layer_widths_round_like_torchvision(width: float) -> None:
    """make_divisible(32·α) for the stem and make_divisible(1280·max(1, α)) for the last 1×1 conv, at widths where an
    off-by-one channel constant would round differently (1.003: last 1280, not 1288; 1.1: stem 32, not 40)."""
    with torch.device("meta"):
        ours = M.build_model("mobilenet_v2", 10, width_mult=width)
        reference = torchvision.models.mobilenet_v2(num_classes=10, width_mult=width)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}
    assert ours.features[0][0].out_channels == M._make_divisible(32 * width)
    assert ours.features[-1][0].out_channels == M._make_divisible(1280 * width) == reference.last_channel


def test_v2_defaults_and_initialisation_equal_torchvision() -> None:
    """MobileNetV2() is torchvision's mobilenet_v2() (1000 classes, α 1, dropout 0.2), and with the same seed the
    freshly initialised weights are identical: Kaiming-normal fan-out convs, unit BN, N(0, 0.01) linear, zero biases."""
    torch.manual_seed(0)
    ours = M.MobileNetV2(num_classes=10)
    torch.manual_seed(0)
    reference = torchvision.models.mobilenet_v2(num_classes=10)
    theirs = reference.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in ours.state_dict().items()) and ours.state_dict().keys() == theirs.keys()
    with torch.device("meta"):
        default, tv_default = M.MobileNetV2(), torchvision.models.mobilenet_v2()
    assert [type(m) for m in default.classifier] == [nn.Dropout, nn.Linear]
    assert (default.classifier[0].p, default.classifier[1].out_features) == (tv_default.classifier[0].p, 1000) == (0.2, 1000)
    assert {k: v.shape for k, v in default.state_dict().items()} == {k: v.shape for k, v in tv_default.state_dict().items()}


def test_v1_initialisation_statistics() -> None:
    """MobileNetV1 shares V2's initialisation: conv weights N(0, 2/fan_out) (fan_out = out channels · k²), BN weight 1
    and bias 0, FC weights N(0, 0.01²) with zero bias."""
    torch.manual_seed(0)
    model = M.MobileNetV1(num_classes=1000, width_mult=0.5)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.weight.numel() >= 4096]
    for conv in convs:
        fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
        assert conv.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.1)
        assert abs(conv.weight.mean().item()) < 0.1 * (2 / fan_out) ** 0.5
    fc = model.classifier[1]
    assert fc.weight.std().item() == pytest.approx(0.01, rel=0.05) and abs(fc.weight.mean().item()) < 1e-3
    assert not fc.bias.any()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(bool((m.weight == 1).all()) and not m.bias.any() for m in bns)


def test_v1_layers_strides_relu_and_width_multiplier() -> None:
    """Paper Table 1: 3×3 conv s2 (32), then 13 DW s{1,2} + PW blocks ending at 1024 channels on a 7×7 map for 224×224
    input; plain ReLU (not ReLU6) after every conv; α scales every width to int(α·c), never below 8."""
    strides = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    widths = [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
    for alpha in (1.0, 0.5, 0.1):
        with torch.device("meta"):
            model = M.MobileNetV1(width_mult=alpha) if alpha == 1.0 else M.build_model("mobilenet_v1", 1000, width_mult=alpha)
            out = model.features(torch.empty(1, 3, 224, 224))
        ch = [max(8, int(c * alpha)) for c in [32, *widths]]
        stem = model.features[0][0]
        assert (stem.in_channels, stem.out_channels, stem.kernel_size, stem.stride, stem.padding) == (3, ch[0], (3, 3),
                                                                                                      (2, 2), (1, 1))
        blocks = list(model.features)[1:]
        assert [b[0][0].stride[0] for b in blocks] == strides
        assert [(b[0][0].kernel_size, b[0][0].padding, b[1][0].kernel_size, b[1][0].padding) for b in blocks] == \
            [((3, 3), (1, 1), (1, 1), (0, 0))] * 13
        assert [(b[0][0].out_channels, b[1][0].in_channels, b[1][0].out_channels) for b in blocks] == \
            [(i, i, o) for i, o in zip(ch, ch[1:])]
        assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))
        assert out.shape == (1, ch[-1], 7, 7) and model.classifier[1].in_features == ch[-1]
        activations = [type(m) for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
        assert activations == [nn.ReLU] * 27
    assert [max(8, int(c * 0.1)) for c in (32, 64, 128, 1024)] == [8, 8, 12, 102]
    assert (model.classifier[0].p, M.MobileNetV1().classifier[1].out_features) == (0.2, 1000)


def test_v2_uses_relu6_except_after_the_linear_projection() -> None:
    """ReLU6 after the stem, every expansion and depthwise conv and the last 1×1 conv (35 in all); each inverted
    residual ends in 1×1 conv → BN with nothing after it (linear bottleneck)."""
    model = M.build_model("mobilenet_v2", 10)
    assert [type(m) for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))] == [nn.ReLU6] * 35
    for block in (b for b in model.features if isinstance(b, M.InvertedResidual)):
        assert [type(m) for m in block.conv[-2:]] == [nn.Conv2d, nn.BatchNorm2d] and block.conv[-2].kernel_size == (1, 1)


def test_separable_cost_defaults_are_3x3_kernels_on_112x112() -> None:
    """separable_cost(M, N) is the notes' first example's setting: K = 3, D_F = 112."""
    cost = M.separable_cost(32, 64)
    assert cost == M.separable_cost(32, 64, 3, 112)
    assert (cost["standard_params"], cost["separable_params"]) == (9 * 32 * 64, 9 * 32 + 32 * 64)
    assert cost["separable_macs"] == (9 * 32 + 32 * 64) * 112 * 112


# ------------------------------------------------------------------------------------------ ablations and compare.py
def _expected_full_over_separable(alpha: float, size: int, num_classes: int) -> Fraction:
    """Whole-model mult-adds of V1 with standard 3×3 convs over V1 with DW + PW, from the layer formulas alone: per
    block K²·M·N·D_F² vs (K²·M + M·N)·D_F²; the stem (3×3, 3 → c₀, stride 2) and the FC are the same in both."""
    ch = [max(8, int(c * alpha)) for c in [32, *(c for c, _ in M.V1_SETTING)]]
    side = (size + 1) // 2
    stem, full, separable = 9 * 3 * ch[0] * side ** 2, 0, 0
    for (m, n), (_, stride) in zip(zip(ch, ch[1:]), M.V1_SETTING):
        side = (side + 1) // 2 if stride == 2 else side
        full += 9 * m * n * side ** 2
        separable += (9 * m + m * n) * side ** 2
    head = ch[-1] * num_classes
    return Fraction(stem + full + head, stem + separable + head)


def test_v1_full_conv_has_no_grouped_convs_and_papers_cost() -> None:
    """separable=False: every conv is a standard one (groups 1, 3×3 except none are 1×1), 14 of them, and the model is
    the V1 paper's Table 4 "Conv MobileNet": 29.3M parameters, 4866M mult-adds at 224."""
    model = M.build_model("mobilenet_v1", 1000, separable=False)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 14 and all(c.groups == 1 and c.kernel_size == (3, 3) for c in convs)
    cost = count_params_and_macs(model, 224)
    assert round(cost["params"] / 1e6, 1) == 29.3 and cost["macs"] / 1e6 == pytest.approx(4866, rel=0.002)
    assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 1000)


@pytest.mark.parametrize("alpha, size", [(0.25, 32), (0.5, 64), (1.0, 32), (1.0, 224)])
def test_v1_full_conv_over_separable_mult_adds_is_the_formula(alpha: float, size: int) -> None:
    """Counted mult-adds of the two models have exactly the ratio the per-layer formula predicts; 1/(1/N + 1/K²) is
    8-9× for the wide layers, the stem and head pull it to ~7.5× at α = 0.25."""
    full = count_params_and_macs(M.build_model("mobilenet_v1", 10, width_mult=alpha, separable=False), size)
    separable = count_params_and_macs(M.build_model("mobilenet_v1", 10, width_mult=alpha), size)
    ratio = Fraction(full["macs"], separable["macs"])
    assert ratio == _expected_full_over_separable(alpha, size, 10)
    assert (8 < ratio < 9) if alpha == 1.0 else (7 < ratio < 9)


def test_relu6_after_projection_only_when_asked() -> None:
    """linear_bottleneck=False adds a ReLU6 after each of the 17 projections (35 + 17 in all) and nothing else; the
    default ends every block in BN. On behaviour: a block without shortcut then outputs only values in [0, 6]."""
    default, ablated = M.build_model("mobilenet_v2", 10), M.build_model("mobilenet_v2", 10, linear_bottleneck=False)
    count = lambda m: [type(x) for x in m.modules() if isinstance(x, (nn.ReLU, nn.ReLU6))]  # noqa: E731
    assert count(default) == [nn.ReLU6] * 35 and count(ablated) == [nn.ReLU6] * 52
    for plain, relu in zip(*((b for b in m.features if isinstance(b, M.InvertedResidual)) for m in (default, ablated))):
        assert [type(x) for x in relu.conv[-3:]] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU6]
        assert [type(x) for x in plain.conv[-2:]] == [nn.Conv2d, nn.BatchNorm2d]
        assert [type(x) for x in relu.conv[:-1]] == [type(x) for x in plain.conv]
    block_plain, block_relu = default.features[2].eval(), ablated.features[2].eval()  # 16 → 24, stride 2: no shortcut
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        assert (block_plain(x) < 0).any()
        y = block_relu(x)
    assert not block_relu.use_shortcut and y.min() >= 0 and y.max() <= 6
    assert default.state_dict().keys() == ablated.state_dict().keys()  # torchvision's weights still load


def test_defaults_unchanged_by_the_ablation_options() -> None:
    """Parameter counts of the defaults (the README's) and the ablations' constructor defaults."""
    params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    with torch.device("meta"):
        assert params(M.MobileNetV1()) == params(M.MobileNetV1(separable=True)) == 4_231_976
        assert params(M.MobileNetV2()) == params(M.MobileNetV2(linear_bottleneck=False)) == 3_504_872
        assert params(M.MobileNetV1(separable=False)) == 29_294_088
    assert all(c.groups > 1 for c in (b[0][0] for b in list(M.MobileNetV1(10, 0.25).features)[1:]))


def test_train_stores_an_ablation_only_when_on_and_refuses_it_for_the_other_model(tmp_path: Path) -> None:
    train = load("05_mobilenet", "train")
    train.main([*FAST, "--model", "mobilenet_v1", "--width-mult", "0.25", "--full-conv", "--limit-batches", "1",
                "--output-dir", str(tmp_path / "full")])
    ckpt = torch.load(tmp_path / "full" / "last.pth", weights_only=True)
    assert ckpt["model_kwargs"] == {"width_mult": 0.25, "separable": False}
    assert not any(k.endswith("features.1.1.0.weight") for k in ckpt["model"])  # one conv per block, no pointwise
    for flag, model in (("--full-conv", "mobilenet_v2"), ("--relu6-projection", "mobilenet_v1")):
        with pytest.raises(UserError, match=flag):
            train.main([*FAST, "--model", model, flag, "--output-dir", str(tmp_path / "x")])


BUDGET_FLAGS = ("--data", "--synthetic-size", "--epochs", "-b", "--opt", "--lr", "--no-augment", "--device", "--print-freq")


def test_compare_gives_every_variant_the_same_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    """Every train.main call gets the same budget flags; a variant only says model, α, size and ablation. The α sweep
    covers both resolutions, the table has a row per point with its own mult-adds, and the figure is written."""
    compare = load("05_mobilenet", "compare")
    calls: list[list[str]] = []

    def fake_train(argv: list[str]) -> dict:
        calls.append(argv)
        return {"metrics": {"accuracy": 0.1 + 0.01 * len(calls)}}

    monkeypatch.setattr(compare, "train_main", fake_train)
    rows = compare.main(["--quick", "--seeds", "3", "--output-dir", str(tmp_path / "runs"),
                         "--assets", str(tmp_path / "assets")])
    pts = compare.points(compare.QUICK["sizes"])
    assert len(calls) == len(rows) == 3 * len(pts)
    assert all(not set(p.variant().argv) & set(BUDGET_FLAGS) for p in pts)
    budgets = {tuple(a for i, a in enumerate(argv) if argv[i - 1] in BUDGET_FLAGS or a in BUDGET_FLAGS)
               for argv in calls}
    assert budgets == {tuple(compare.base_flags(compare.QUICK, "cpu"))}
    for size in compare.QUICK["sizes"]:
        assert sorted(p.width for p in pts if p.model == "mobilenet_v1" and p.size == size and not p.ablation) == \
            [0.25, 0.5, 0.75, 1.0]
    assert {p.ablation for p in pts} == {None, "--full-conv", "--relu6-projection"}
    table = capsys.readouterr().out.split("| variant |")[1]
    assert table.count("\n|") == len(pts) + 1  # separator + a row per point
    macs = {p.name: p.cost()["macs"] for p in pts}
    low, high = compare.QUICK["sizes"]
    assert macs[f"V1 {high}px α=0.5"] > 0.97 * (high / low) ** 2 * macs[f"V1 {low}px α=0.5"]  # mult-adds ∝ ρ²
    assert macs[f"V2 + ReLU6 {low}px α=0.5"] == macs[f"V2 {low}px α=0.5"]  # an activation adds no mult-adds
    full, separable = macs[f"V1 full conv {low}px α=0.25"], macs[f"V1 {low}px α=0.75"]
    assert 0.8 < full / separable < 1.2  # the Table 4 comparison at (about) equal cost
    assert len(set(macs.values())) == len(pts) - 1  # only the V2 pair shares a count
    assert (tmp_path / "assets" / "accuracy_vs_macs.png").stat().st_size > 10_000


@pytest.mark.parametrize("args, message", [(["--image-size", "32"], "two different"),
                                           (["--image-size", "16", "32"], "at least 32"),
                                           (["--seeds", "0"], "--seeds"), (["--epochs", "0"], "--epochs")])
def test_compare_refuses_bad_budgets_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     args: list[str], message: str) -> None:
    compare = load("05_mobilenet", "compare")
    monkeypatch.setattr(compare, "train_main", lambda argv: pytest.fail("trained before checking the flags"))
    with pytest.raises(UserError, match=message):
        compare.main(["--quick", *args, "--output-dir", str(tmp_path)])


def test_compare_costs_table_still_available(capsys: pytest.CaptureFixture) -> None:
    rows = load("05_mobilenet", "compare").main(["--costs", "--image-size", "32", "-b", "2", "--rounds", "1"])
    assert [(r["model"], r["width_mult"]) for r in rows] == [("mobilenet_v1", 1.0), ("mobilenet_v1", 0.5),
                                                            ("mobilenet_v2", 1.0), ("mobilenet_v2", 0.5)]
    assert "| mobilenet_v2 | 0.5 |" in capsys.readouterr().out and all(r["step_s"] > 0 for r in rows)
