"""04_dilated_conv: the notes' formulas (膨胀卷积), gridding heatmaps, the three model variants, train/predict."""
from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from common.errors import UserError
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
    assert holes == 120 and image.mode == "RGBA" and image.size == (int(5.2 * 110), int(4.4 * 110))


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


def test_train_then_predict_with_receptive_field(tmp_path, capsys) -> None:
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
    assert Image.open(out / "receptive_field_gridding.png").format == "PNG"
    field = rf.model_receptive_field(model_mod.build_model("gridding", 6, width=8, groups=1))
    holes = rf.count_holes(field)
    assert holes > 0 and f"receptive field: {out / 'receptive_field_gridding.png'} ({holes} holes)" in capsys.readouterr().out


def test_train_rejects_bad_flags(tmp_path) -> None:
    from common.errors import UserError

    train = load("04_dilated_conv", "train")
    with pytest.raises(UserError, match="--width must be even"):
        train.main(["--width", "7", "--output-dir", str(tmp_path)])
    with pytest.raises(UserError, match="--crop-size must be at least 1"):
        train.main(["--crop-size", "0", "--output-dir", str(tmp_path)])


# --- Mutation gaps (tests/README.md, "Mutation testing"): each test pins a behaviour the notes, the HDC paper or the
# README define, so that a changed formula term, default or message is noticed.

def test_formula_defaults_are_stride_1_no_padding_no_dilation() -> None:
    # Output = (W − F + 2P) / S + 1 with the defaults S = 1, P = 0, r = 1: a plain 3×3 conv takes 19 to 17.
    assert dilation.conv_output_size(19, 3) == 17 == nn.Conv2d(1, 1, 3)(torch.zeros(1, 1, 19, 19)).shape[-1]
    # the notes' example with only padding and dilation given: stride 1 is the default.
    assert dilation.conv_output_size(19, 3, padding=6, dilation=6) == 19
    assert dilation.same_padding(3) == 1  # an undilated 3×3 conv keeps its size with padding 1


def test_same_padding_is_an_int_that_nn_conv2d_accepts() -> None:
    # PyTorch has no padding='SAME': the computed padding goes straight into nn.Conv2d, so it must be an int, not 6.0.
    padding = dilation.same_padding(3, 6)
    assert type(padding) is int and padding == 6
    conv = nn.Conv2d(1, 1, 3, padding=padding, dilation=6)
    assert conv(torch.zeros(1, 1, 19, 19)).shape[-2:] == (19, 19)


def test_formulas_reject_bad_arguments_with_messages() -> None:
    # 膨胀系数 and 卷积核尺寸 must each be at least 1 (either one alone is enough to fail).
    for kernel_size, rate in ((3, 0), (0, 6), (0, 0)):
        with pytest.raises(ValueError, match="kernel_size and dilation must be >= 1"):
            dilation.dilated_kernel_size(kernel_size, rate)
    with pytest.raises(ValueError, match="kernel span 13 does not fit into size 12 with padding 0"):
        dilation.conv_output_size(12, 3, dilation=6)
    with pytest.raises(ValueError, match="pooling span 3 does not fit into size 2 with padding 0"):
        dilation.pool_output_size(2, 3)
    for rates in ([], [1, 0, 2]):
        with pytest.raises(ValueError, match=r"rates must be a non-empty list of integers >= 1, got \[") as info:
            dilation.hdc_max_distances(rates)
        assert str(list(rates)) in str(info.value)


def test_hdc_formula_every_term_of_the_max() -> None:
    """M_i = max[M_{i+1} − 2r_i, M_{i+1} − 2(M_{i+1} − r_i), r_i] (Wang et al. 2018): each term wins somewhere."""
    # first term: [1, 2, 9] → M_2 = max[9 − 4, 9 − 14, 2] = 5 (the notes' second example).
    assert dilation.hdc_max_distances([2, 9]) == [5, 9]
    # last term: [1, 2, 5] → M_2 = max[1, −1, 2] = 2 (the notes' first example).
    assert dilation.hdc_max_distances([2, 5]) == [2, 5]
    # middle term, 2r_i − M_{i+1}: it wins only when r_i exceeds M_{i+1}, i.e. for decreasing rates.
    assert dilation.hdc_max_distances([5, 1]) == [9, 1]  # M_1 = max[1 − 10, 1 − 2(1 − 5), 5] = 9
    # [4, 2, 1]: M_2 = max[1 − 4, 1 − 2(1 − 2), 2] = 3, M_1 = max[3 − 8, 3 − 2(3 − 4), 4] = 5
    assert dilation.hdc_max_distances([4, 2, 1]) == [5, 3, 1]
    assert dilation.hdc_max_distances((7,)) == [7]  # M_n = r_n


def test_hdc_rule_boundaries_and_single_layers() -> None:
    # M_2 ≤ K, with equality allowed: [1, 2, 7] → M_2 = max[3, −3, 2] = 3 = K (and M_1 = 1: no holes either).
    assert dilation.hdc_max_distances([1, 2, 7]) == [1, 3, 7]
    assert dilation.hdc_valid([1, 2, 7]) and dilation.hdc_valid([1, 2, 7], kernel_size=3)
    assert rf.count_holes(rf.receptive_field([1, 2, 7])) == 0
    # K defaults to 3: [1, 2, 8] has M_2 = 4, too far for a 3×3 kernel, fine for K = 4.
    assert not dilation.hdc_valid([1, 2, 8]) and dilation.hdc_valid([1, 2, 8], kernel_size=4)
    # two layers: M_2 = r_2, so [1, 5] fails (5 > 3) although r_1 = 1, and [1, 3] passes.
    assert not dilation.hdc_valid([1, 5]) and dilation.hdc_valid([1, 3])
    # one layer has no M_2: valid only at rate 1 (the notes: 第一层膨胀系数需要设为1).
    assert dilation.hdc_valid([1]) and not dilation.hdc_valid([2]) and not dilation.hdc_valid([3])


def _drawn(field: torch.Tensor, title: str = "t"):
    """The heatmap figure's parts: the image artist, the colour bar's axes, the legend's labels, the title."""
    fig = rf.heatmap_figure(field, title)
    heat, bar = fig.axes
    return fig, heat, bar


def test_heatmap_squares_are_the_path_counts_and_holes_are_black() -> None:
    import matplotlib.pyplot as plt

    # [2, 2, 2]: 13×13 field; the centre has the most paths (7 per axis: 49), the corners one, odd offsets none.
    field = rf.receptive_field([2, 2, 2])
    counts = field.numpy()
    assert counts.max() == counts[6, 6] == 49 and counts[0, 0] == 1
    fig, heat, bar = _drawn(field, "rates [2, 2, 2]")
    image = heat.images[0]
    drawn = image.get_array()
    assert np.array_equal(drawn.data, counts) and np.array_equal(drawn.mask, counts == 0)  # masked = exactly the holes
    assert image.get_cmap().name == "viridis" and tuple(image.get_cmap().get_bad()) == (0, 0, 0, 1)  # holes: black
    assert image.get_clim() == (1, 49)  # the colour scale spans the reached counts
    assert image.get_extent() == [-6.5, 6.5, 6.5, -6.5]  # one unit square per pixel, 0 at the centre output's input
    assert bar.get_ylabel() == "paths from the input pixel to the centre output"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["hole: 0 paths"]
    assert heat.get_title() == "rates [2, 2, 2]" and "column" in heat.get_xlabel() and "row" in heat.get_ylabel()
    plt.close(fig)
    # any H×W field: even sides put the centre at index H // 2, W // 2
    fig, heat, _ = _drawn(torch.ones(4, 5, dtype=torch.float64))
    assert heat.images[0].get_extent() == [-2.5, 2.5, 1.5, -2.5]
    plt.close(fig)


def test_save_heatmap_title_kernel_size_and_nested_folder(tmp_path, monkeypatch) -> None:
    from PIL import Image

    titles = []
    drawn = rf.heatmap_figure
    monkeypatch.setattr(rf, "heatmap_figure", lambda field, title: titles.append((field.shape, title)) or drawn(field, title))
    path = tmp_path / "a" / "b" / "rates.png"  # missing parent folders are created
    assert rf.save_heatmap([2, 2, 2], path) == 120
    assert Image.open(path).format == "PNG"
    # kernel_size reaches the field: one 5×5 layer at rate 2 spans 2(5 − 1) + 1 = 9, every other pixel a hole.
    assert rf.save_heatmap([2], tmp_path / "k5.png", kernel_size=5) == 81 - 25
    assert titles == [((13, 13), "rates [2, 2, 2]: 13x13 field, 120 holes"), ((9, 9), "rates [2]: 9x9 field, 56 holes")]


def test_receptive_field_cli_writes_one_png_per_rate_list(tmp_path, capsys) -> None:
    from PIL import Image

    out = tmp_path / "assets"
    assert rf.main(["2,2,2", "1,2,5", "1,2,9", "--out-dir", str(out)]) is None
    assert sorted(p.name for p in out.iterdir()) == ["rates_1_2_5.png", "rates_1_2_9.png", "rates_2_2_2.png"]
    assert capsys.readouterr().out.splitlines() == [f"{out / 'rates_2_2_2.png'}: 120 holes",
                                                    f"{out / 'rates_1_2_5.png'}: 0 holes",
                                                    f"{out / 'rates_1_2_9.png'}: 184 holes"]
    for name in ("2_2_2", "1_2_5", "1_2_9"):
        assert Image.open(out / f"rates_{name}.png").format == "PNG"


def test_receptive_field_cli_default_out_dir(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    rf.main(["3"])  # a single rate is a list of one; 3×3 at rate 3 spans 7 with 49 − 9 holes
    path = Path("runs/04_dilated_conv/receptive_field/rates_3.png")
    assert (tmp_path / path).is_file() and capsys.readouterr().out == f"{path}: 40 holes\n"


@pytest.mark.parametrize("spec, message", [("1,x", "rates must be comma-separated integers, got '1,x'"),
                                           ("1,2.5", "rates must be comma-separated integers, got '1,2.5'"),
                                           ("0,2", "rates must be >= 1, got '0,2'"),
                                           ("2,-1", "rates must be >= 1, got '2,-1'")])
def test_receptive_field_cli_rejects_bad_rates(tmp_path, capsys, spec, message) -> None:
    with pytest.raises(SystemExit) as info:
        rf.main([spec, "1,2", "--out-dir", str(tmp_path)])
    assert info.value.code == 2 and message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # stopped at the bad list, before drawing anything


def test_receptive_field_cli_help_and_missing_rates(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        rf.main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert info.value.code == 0 and rf.main.__doc__.split(":")[0] in help_text
    assert re.search(r"\brates comma-separated dilation rates of stacked 3×3 convs, e\.g\. 1,2,5\s", help_text)
    assert "--out-dir OUT_DIR" in help_text
    with pytest.raises(SystemExit) as info:
        rf.main([])
    assert info.value.code == 2 and "rates" in capsys.readouterr().err


def test_model_receptive_field_reads_each_conv_and_rejects_non_square_ones() -> None:
    # one 5×5 conv at rate 2, stride 3, then a 3×3 conv: 1 + 4·2 + 2·1·3 = 15
    chain = nn.Sequential(nn.Conv2d(1, 1, 5, stride=3, dilation=2), nn.ReLU(), nn.Conv2d(1, 1, 3))
    assert torch.equal(rf.model_receptive_field(chain), rf.conv_stack_field([(5, 2, 3), (3, 1, 1)]))
    assert rf.model_receptive_field(chain).shape == (15, 15)
    for conv in (nn.Conv2d(1, 1, (3, 1)), nn.Conv2d(1, 1, 3, dilation=(2, 1)), nn.Conv2d(1, 1, 3, stride=(1, 2))):
        with pytest.raises(ValueError, match="needs square convs"):
            rf.model_receptive_field(nn.Sequential(conv))


def test_conv_bn_relu_keeps_19x19_at_dilation_6() -> None:
    # The notes' example as the model's block: padding = dilation = 6 keeps 19×19 at the default stride 1.
    block = model_mod.conv_bn_relu(2, 4, dilation=6)
    assert [type(m) for m in block] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    conv = block[0]
    assert conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.dilation == (6, 6)
    assert conv.padding == (dilation.same_padding(3, 6),) * 2 and conv.bias is None  # BN follows: no bias
    torch.manual_seed(0)
    y = block(torch.randn(2, 2, 19, 19))
    assert y.shape == (2, 4, 19, 19) and y.min() == 0 and y.max() > 0  # ReLU after BN: half the values clipped
    plain = model_mod.conv_bn_relu(2, 4)
    assert plain[0].stride == (1, 1) and plain[0].dilation == (1, 1)
    assert plain(torch.randn(1, 2, 19, 19)).shape[-2:] == (19, 19)


VARIANT_LAYERS = {  # README: body convs (dilation, stride) per group
    "hdc": [(1, 1), (2, 1), (5, 1)],
    "gridding": [(2, 1), (2, 1), (2, 1)],
    "downsample": [(1, 2), (1, 1), (1, 1)],
}


@pytest.mark.parametrize("name", model_mod.MODELS)
def test_variant_dilation_rates_strides_and_parameter_count(name: str) -> None:
    net = model_mod.build_model(name, 6)
    body = [(m[0].dilation[0], m[0].stride[0]) for m in net.body]
    assert body == VARIANT_LAYERS[name] * 2  # groups = 2 by default
    assert [m[0].stride for m in net.stem] == [(2, 2), (2, 2)] and [m[0].out_channels for m in net.stem] == [16, 32]
    assert net.classifier.in_channels == 32 and net.classifier.out_channels == 6
    assert sum(p.numel() for p in net.parameters()) == 61_014  # README: width 32, 6 classes, same for every variant
    small = model_mod.build_model(name, 4, width=8, groups=3)  # kwargs reach the net
    assert [(m[0].dilation[0], m[0].stride[0]) for m in small.body] == VARIANT_LAYERS[name] * 3
    assert small.stem[1][0].out_channels == 8 and small.classifier.in_channels == 8


def test_dilated_seg_net_defaults_and_unknown_names() -> None:
    net = model_mod.DilatedSegNet(6)  # defaults: the hdc variant, width 32, two groups
    assert net.variant == "hdc" and sum(p.numel() for p in net.parameters()) == 61_014
    assert [m[0].dilation[0] for m in net.body] == [1, 2, 5, 1, 2, 5]
    with pytest.raises(ValueError, match=r"unknown model 'aspp'; choose from \('hdc', 'gridding', 'downsample'\)"):
        model_mod.build_model("aspp", 6)
    with pytest.raises(ValueError, match=r"unknown variant 'HDC'; choose from \('hdc', 'gridding', 'downsample'\)"):
        model_mod.DilatedSegNet(6, variant="HDC")


def test_forward_upsamples_bilinearly_without_aligned_corners() -> None:
    # The classifier's stride-4 logits, resized to the input like torchvision's segmentation nets (align_corners=False).
    torch.manual_seed(0)
    net = model_mod.build_model("hdc", 3, width=8, groups=1).eval()
    x = torch.randn(1, 3, 30, 22)
    with torch.no_grad():
        logits = net.classifier(net.body(net.stem(x)))
        assert logits.shape[-2:] == (8, 6)
        expected = nn.functional.interpolate(logits, size=(30, 22), mode="bilinear", align_corners=False)
        assert torch.allclose(net(x), expected)
        aligned = nn.functional.interpolate(logits, size=(30, 22), mode="bilinear", align_corners=True)
        assert not torch.allclose(net(x), aligned)


def test_hdc_rule_refuses_rates_with_a_common_factor() -> None:
    """[2, 2, 2] meets M_2 <= K (M_2 = 2) yet grids, the notes' own example: the HDC paper's second rule (no common
    factor > 1) refuses it, and [2, 4, 6] too; [1, 2, 5] and [3, 4, 5] (gcd 1) stay valid where M_2 allows."""
    assert dilation.hdc_max_distances([2, 2, 2])[1] == 2
    assert not dilation.hdc_valid([2, 2, 2]) and not dilation.hdc_valid([2, 4, 6], kernel_size=9)
    assert rf.count_holes(rf.receptive_field([2, 2, 2])) == 120
    assert dilation.hdc_valid([1, 2, 5]) and dilation.hdc_valid([3, 4, 5], kernel_size=9)


def test_compare_trains_every_variant_with_the_same_budget_and_draws_its_figures(tmp_path, capsys) -> None:
    compare = load("04_dilated_conv", "compare")
    rows = compare.main(["--seeds", "2", "--epochs", "1", "--synthetic-size", "4", "-b", "4", "--image-size", "32",
                         "--output-dir", str(tmp_path / "runs"), "--assets", str(tmp_path)])
    out = capsys.readouterr().out
    assert [(r["variant"], r["seed"]) for r in rows] == [(v, s) for v in ("hdc", "gridding", "downsample") for s in (0, 1)]
    assert "| variant | mIoU | boundary IoU (2 px) | bar IoU | pixel accuracy | seeds | time / run |" in out
    assert "`python " in out and "wall time" in out
    args = {v: torch.load(tmp_path / "runs" / v / "seed1" / "last.pth", weights_only=True)["args"] for v in model_mod.MODELS}
    budget = ("epochs", "batch_size", "lr", "synthetic_size", "image_size", "seed", "width", "groups")
    assert all({k: a[k] for k in budget} == {k: args["hdc"][k] for k in budget} for a in args.values())  # only --model differs
    assert [a["model"] for a in args.values()] == list(model_mod.MODELS) and args["hdc"]["seed"] == 1
    for name in ("compare.png", "predictions.png", *(f"receptive_field_{v}.png" for v in model_mod.MODELS)):
        assert (tmp_path / name).stat().st_size > 10_000
    with pytest.raises(UserError, match=r"^--epochs must be at least 1, got 0$"):
        compare.main(["--epochs", "0", "--output-dir", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()
