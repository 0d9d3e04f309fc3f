"""04_dilated_conv: the notes' formulas (膨胀卷积), gridding heatmaps, the three model variants, train/predict."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn as nn
from util import load

dilation = load("04_dilated_conv", "dilation")
rf = load("04_dilated_conv", "receptive_field")
model_mod = load("04_dilated_conv", "model")


def test_dilated_kernel_size_and_same_padding_reproduce_the_notes_example() -> None:
    # The notes: 19×19 input, 3×3 kernel, dilation 6 → 6(3−1)+1 = 13; (19 − 13 + 2p)/1 + 1 = 19 → p = 6.
    assert dilation.dilated_kernel_size(3, 6) == 13
    assert dilation.same_padding(3, 6) == 6
    assert dilation.conv_output_size(19, 3, stride=1, padding=6, dilation=6) == 19
    conv = nn.Conv2d(1, 1, 3, padding=6, dilation=6)
    assert conv(torch.zeros(1, 1, 19, 19)).shape[-2:] == (19, 19)


def test_conv_output_size_matches_pytorch() -> None:
    for size, k, s, p, d in itertools.product((7, 19, 32), (1, 3, 5), (1, 2, 3), (0, 1, 2), (1, 2)):
        if (k - 1) * d + 1 > size + 2 * p:
            with pytest.raises(ValueError):
                dilation.conv_output_size(size, k, s, p, d)
            continue
        got = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d)(torch.zeros(1, 1, size, size)).shape[-1]
        assert dilation.conv_output_size(size, k, s, p, d) == got, (size, k, s, p, d)


def test_pooling_stride_defaults_to_kernel_and_ceil_mode_matches_pytorch() -> None:
    # 池化步长默认为卷积核尺寸; 卷积向下取整, 池化向上取整 (ceil_mode=True) — e.g. 3×3 pooling of 8: floor → 2, ceil → 3.
    assert dilation.pool_output_size(8, 3) == 2
    assert dilation.pool_output_size(8, 3, ceil_mode=True) == 3
    for size, k, s, p, ceil in itertools.product((5, 7, 8, 13), (2, 3), (None, 1, 2), (0, 1), (False, True)):
        if p > k // 2:
            continue
        pool = nn.MaxPool2d(k, stride=s, padding=p, ceil_mode=ceil)
        got = pool(torch.zeros(1, 1, size, size)).shape[-1]
        assert dilation.pool_output_size(size, k, s, p, ceil_mode=ceil) == got, (size, k, s, p, ceil)


def test_same_padding_rejects_even_span() -> None:
    with pytest.raises(ValueError, match="even"):
        dilation.same_padding(2, 1)


def test_hdc_rule_reproduces_the_notes_examples() -> None:
    # K = 3: [1, 2, 5] → M2 = max[5−4, 5−2(5−2), 2] = 2 ≤ 3 valid; [1, 2, 9] → M2 = max[5, −5, 2] = 5 > 3 not valid.
    assert dilation.hdc_max_distances([1, 2, 5]) == [1, 2, 5]
    assert dilation.hdc_max_distances([1, 2, 9]) == [3, 5, 9]
    assert dilation.hdc_valid([1, 2, 5], kernel_size=3)
    assert not dilation.hdc_valid([1, 2, 9], kernel_size=3)


def test_gridding_holes_counted_from_the_gradient() -> None:
    grid = rf.receptive_field([2, 2, 2])
    assert grid.shape == (13, 13)
    # rate 2 everywhere only ever touches even offsets: 7×7 of 13×13 pixels are reached.
    assert rf.count_holes(grid) == 13 * 13 - 7 * 7
    assert (grid[::2, ::2] > 0).all() and (grid[1::2, :] == 0).all()
    hdc = rf.receptive_field([1, 2, 5])
    assert hdc.shape == (17, 17) and rf.count_holes(hdc) == 0
    assert rf.count_holes(rf.receptive_field([1, 2, 9])) > 0
    # all-ones weights: the field sums to the number of paths, 9 taps per layer.
    assert hdc.sum().item() == 9 ** 3


def test_hdc_distance_agrees_with_the_counted_holes() -> None:
    """M_1 == 1 (the formula) exactly when the gradient finds no holes, for every non-decreasing group of rates ≤ 6."""
    for n in (2, 3):
        for rates in itertools.combinations_with_replacement(range(1, 7), n):
            no_holes = rf.count_holes(rf.receptive_field(rates)) == 0
            assert (dilation.hdc_max_distances(rates)[0] == 1) == no_holes, rates


def test_heatmap_png_written(tmp_path) -> None:
    from PIL import Image

    holes = rf.save_heatmap([2, 2, 2], tmp_path / "grid.png")
    image = Image.open(tmp_path / "grid.png")
    assert holes == 120 and image.mode == "RGB" and image.width == 13 * 12


@pytest.mark.parametrize("name", model_mod.MODELS)
def test_model_output_size_odd_inputs_and_train_step(name: str) -> None:
    torch.manual_seed(0)
    model = model_mod.build_model(name, num_classes=4, width=16, groups=1)
    model.eval()
    assert model(torch.randn(1, 3, 37, 29)).shape == (1, 4, 37, 29)
    model.train()
    x, y = torch.randn(2, 3, 33, 33), torch.randint(0, 4, (2, 33, 33))
    y[:, :3] = 255
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = nn.CrossEntropyLoss(ignore_index=255)(model(x), y)
    loss.backward()
    before = model.classifier.weight.detach().clone()
    optimizer.step()
    assert torch.isfinite(loss) and not torch.equal(before, model.classifier.weight)


def test_variants_share_the_parameter_budget_and_differ_in_resolution() -> None:
    counts = {n: sum(p.numel() for p in model_mod.build_model(n, 6).parameters()) for n in model_mod.MODELS}
    assert len(set(counts.values())) == 1, counts
    x = torch.randn(1, 3, 64, 64)
    maps = {}
    for n in model_mod.MODELS:
        net = model_mod.build_model(n, 6).eval()
        maps[n] = net.body(net.stem(x)).shape[-1]
    assert maps == {"hdc": 16, "gridding": 16, "downsample": 4}


def test_model_receptive_fields_show_gridding_only_for_the_gridding_variant() -> None:
    holes = {n: rf.count_holes(rf.model_receptive_field(model_mod.build_model(n, 6, width=8))) for n in model_mod.MODELS}
    assert holes["hdc"] == 0 and holes["downsample"] == 0 and holes["gridding"] > 0
    # stem strides (2, 2) then rates 1, 2, 5 twice at jump 4: 1 + 2 + 4 + 4·2·(1 + 2 + 5)·2 = 135
    assert rf.model_receptive_field(model_mod.build_model("hdc", 6, width=8)).shape == (135, 135)


def test_train_then_predict_with_receptive_field(tmp_path) -> None:
    from PIL import Image

    train = load("04_dilated_conv", "train")
    summary = train.main(["--model", "gridding", "--width", "8", "--groups", "1", "--synthetic-size", "8", "-b", "4",
                          "--crop-size", "32", "--epochs", "1", "--print-freq", "1", "--output-dir", str(tmp_path)])
    assert 0 <= summary["metrics"]["miou"] <= 1
    ckpt = torch.load(tmp_path / "last.pth", weights_only=True)
    assert ckpt["model_name"] == "gridding" and ckpt["model_kwargs"] == {"width": 8, "groups": 1}
    image = tmp_path / "odd.png"
    Image.new("RGB", (27, 41), (200, 20, 20)).save(image)
    predict = load("04_dilated_conv", "predict")
    out = tmp_path / "pred"
    assert predict.main([str(tmp_path / "last.pth"), str(image), "--output-dir", str(out), "--receptive-field"]) == 0
    mask = Image.open(out / "odd_mask.png")
    assert mask.mode == "P" and mask.size == (27, 41)
    heatmap = Image.open(out / "receptive_field_gridding.png")
    field = rf.model_receptive_field(model_mod.build_model("gridding", 6, width=8, groups=1))
    assert heatmap.width == field.shape[1] * 3 and rf.count_holes(field) > 0


def test_train_rejects_bad_flags(tmp_path) -> None:
    from common.errors import UserError

    train = load("04_dilated_conv", "train")
    with pytest.raises(UserError, match="--width must be even"):
        train.main(["--width", "7", "--output-dir", str(tmp_path)])
    with pytest.raises(UserError, match="--crop-size must be at least 1"):
        train.main(["--crop-size", "0", "--output-dir", str(tmp_path)])
