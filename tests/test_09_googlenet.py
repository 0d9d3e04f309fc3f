"""09_googlenet: Inception branches, aux heads (training only, loss weight 0.3), torchvision parity, small inputs."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from common.complexity import count_params_and_macs
from common.errors import UserError
from common.synthetic import SyntheticShapes
from util import load, training_step_ops

G = load("09_googlenet", "model")
COUNT = count_params_and_macs


def _torchvision_googlenet(**kwargs) -> nn.Module:
    return torchvision.models.googlenet(init_weights=True, **kwargs)


@pytest.mark.parametrize("aux, params", [(False, 6_624_904), (True, 13_004_888)])
def test_compat_state_dict_equals_torchvision(aux: bool, params: int) -> None:
    ours = G.build_model("googlenet", 1000, aux_logits=aux, torchvision_compat=True)
    reference = _torchvision_googlenet(aux_logits=aux)
    assert sum(p.numel() for p in ours.parameters()) == params
    assert list(ours.state_dict()) == list(reference.state_dict())
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}


@pytest.mark.parametrize("transform_input", [False, True])
def test_compat_loads_torchvision_strictly_and_matches_eval_outputs(transform_input: bool) -> None:
    torch.manual_seed(0)
    reference = _torchvision_googlenet(aux_logits=True, transform_input=transform_input).eval()
    with torch.no_grad():  # non-trivial BN statistics so the comparison covers them
        for module in reference.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    ours = G.build_model("googlenet", 1000, torchvision_compat=True, transform_input=transform_input).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-6)


def test_compat_runs_exactly_torchvisions_operators() -> None:
    """Same operators on the same shapes as torchvision's model, aux heads included (step-time ratio ≈ 1)."""
    x = torch.randn(2, 3, 32, 32)
    ours = G.build_model("googlenet", 10, torchvision_compat=True)
    assert training_step_ops(ours, x) == training_step_ops(_torchvision_googlenet(num_classes=10), x)


def test_compat_mult_adds_match_torchvision_metadata() -> None:
    cost = COUNT(G.build_model("googlenet", 1000, aux_logits=False, torchvision_compat=True), 224)
    ops = torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1.meta["_ops"]
    assert cost["macs"] / 1e9 == pytest.approx(ops, rel=0.01)


def test_paper_variant_uses_5x5_in_the_third_branch() -> None:
    """Paper-faithful by default: the only difference from torchvision is 5×5 instead of 3×3 after the 5×5 reduce."""
    paper = G.build_model("googlenet", 1000, aux_logits=False)
    compat = G.build_model("googlenet", 1000, aux_logits=False, torchvision_compat=True)
    assert all(m.branch3[1].conv.kernel_size == (5, 5) for m in paper.modules() if isinstance(m, G.Inception))
    extra = sum(red * out * (25 - 9) for _, _, _, _, red, out, _ in G.INCEPTION.values())
    assert sum(p.numel() for p in paper.parameters()) - sum(p.numel() for p in compat.parameters()) == extra
    # GoogLeNet paper Table 1: about 6.8M parameters (its per-row counts do not all follow from its own channel numbers,
    # e.g. inception 4c is listed as 463K, 509K by formula) and about 1.5G mult-adds.
    assert sum(p.numel() for n, p in paper.named_parameters() if p.dim() > 1) / 1e6 == pytest.approx(6.8, rel=0.03)
    assert COUNT(paper, 224)["macs"] / 1e9 == pytest.approx(1.5, rel=0.06)


def test_inception_concatenates_four_branches() -> None:
    block = G.Inception(*G.INCEPTION["3a"]).eval()
    x = torch.randn(1, 192, 7, 7)
    with torch.no_grad():
        parts = [block.branch1(x), block.branch2(x), block.branch3(x), block.branch4(x)]
        out = block(x)
    assert [p.shape[1] for p in parts] == [64, 128, 32, 32] and out.shape == (1, 256, 7, 7)
    assert torch.equal(out, torch.cat(parts, 1))


@pytest.mark.parametrize("compat", [False, True])
@pytest.mark.parametrize("size", [32, 96, 224])
def test_aux_outputs_only_in_train_mode_at_any_size(compat: bool, size: int) -> None:
    model = G.build_model("googlenet", 7, torchvision_compat=compat)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        logits = model.eval()(x)
        out = model.train()(x)
        no_aux = G.build_model("googlenet", 7, aux_logits=False, torchvision_compat=compat).train()(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 7)
    assert isinstance(out, tuple) and len(out) == 3 and all(o.shape == (2, 7) for o in out)
    assert isinstance(no_aux, torch.Tensor) and no_aux.shape == (2, 7)


def test_aux_heads_sit_after_4a_and_4d() -> None:
    model = G.build_model("googlenet", 3).train()
    seen = {}
    model.aux1.register_forward_hook(lambda m, i, o: seen.__setitem__("aux1", i[0].shape[1]))
    model.aux2.register_forward_hook(lambda m, i, o: seen.__setitem__("aux2", i[0].shape[1]))
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert seen == {"aux1": 512, "aux2": 528}  # outputs of inception 4a (512 ch) and 4d (528 ch)


def test_loss_is_main_plus_0_3_times_aux() -> None:
    target = torch.tensor([0, 2])
    main, aux1, aux2 = torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 3)
    ce = nn.functional.cross_entropy
    expected = ce(main, target) + 0.3 * (ce(aux1, target) + ce(aux2, target))
    criterion = G.GoogLeNetLoss()
    torch.testing.assert_close(criterion((main, aux1, aux2), target), expected)
    torch.testing.assert_close(criterion(main, target), ce(main, target))


def test_strict_loading_is_strict_and_aux_free_loading_is_explicit() -> None:
    """`load_state_dict(strict=True)` refuses a state_dict without aux heads (no hidden relaxation); the documented
    `load_without_aux` skips exactly the aux keys and stays strict about every other one."""
    with_aux = G.build_model("googlenet", 4)
    without = G.build_model("googlenet", 4, aux_logits=False)
    with pytest.raises(RuntimeError, match="aux1.conv.conv.weight"):
        with_aux.load_state_dict(without.state_dict(), strict=True)
    with pytest.raises(RuntimeError, match="aux2.fc2.bias"):
        without.load_state_dict(with_aux.state_dict(), strict=True)
    aux_before = with_aux.aux1.fc2.weight.detach().clone()
    G.load_without_aux(without, with_aux.state_dict())                 # trained with aux → predict without
    torch.testing.assert_close(without.fc.weight, with_aux.fc.weight)
    G.load_without_aux(with_aux, without.state_dict())                 # an aux-free file: aux heads keep their init
    assert torch.equal(with_aux.aux1.fc2.weight, aux_before)
    broken = {k: v for k, v in without.state_dict().items() if k != "fc.weight"}
    with pytest.raises(RuntimeError, match="missing keys \\['fc.weight'\\]"):
        G.load_without_aux(without, broken)
    with pytest.raises(RuntimeError, match="unexpected keys \\['extra'\\]"):
        G.load_without_aux(without, {**without.state_dict(), "extra": torch.ones(1)})


@pytest.mark.parametrize("compat", [False, True])
def test_one_training_step_with_aux_loss(compat: bool) -> None:
    torch.manual_seed(0)
    model = G.build_model("googlenet", 4, torchvision_compat=compat).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    before = model.aux1.fc2.weight.detach().clone()
    loss = G.GoogLeNetLoss()(model(torch.randn(2, 3, 32, 32)), torch.tensor([1, 3]))
    loss.backward()
    assert model.inception4a.branch1.conv.weight.grad.abs().sum() > 0
    optimizer.step()
    assert torch.isfinite(loss) and not torch.equal(before, model.aux1.fc2.weight)  # aux heads are trained too


def test_unknown_model_name() -> None:
    with pytest.raises(ValueError, match="inception_v3"):
        G.build_model("inception_v3", 10)


# ------------------------------------------------------------------------------------------ train.py / predict.py
FAST = ["--data", "synthetic", "--synthetic-size", "32", "-b", "16", "--epochs", "1", "--print-freq", "2"]


def test_train_with_aux_then_predict(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    load("09_googlenet", "train").main([*FAST, "--output-dir", str(tmp_path / "run")])
    ckpt = torch.load(tmp_path / "run" / "last.pth", weights_only=True)
    assert ckpt["model_kwargs"] == {"aux_logits": True, "torchvision_compat": False, "transform_input": False}
    assert any(k.startswith("aux1.") for k in ckpt["model"]) and ckpt["metrics"]["loss"] > 0
    image = tmp_path / "shape.png"
    Image.fromarray(SyntheticShapes(1, image_size=32).data[0]).save(image)
    capsys.readouterr()
    assert load("09_googlenet", "predict").main([str(tmp_path / "run" / "last.pth"), str(image), "--topk", "2"]) == 0
    line = capsys.readouterr().out.strip()  # eval mode: one logits tensor, so a plain top-2 line
    assert line.startswith(f"{image}: ") and line.count("(") == 2
    assert line.split(": ", 1)[1].split(" (")[0] in ckpt["class_names"]


def test_torchvision_state_dict_file_into_compat_with_new_head(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A torchvision GoogLeNet state_dict (1000 classes, with aux heads) fine-tuned on 10 classes without aux heads."""
    torch.manual_seed(0)
    source = _torchvision_googlenet(aux_logits=True).state_dict()
    torch.save(source, tmp_path / "googlenet.pth")
    capsys.readouterr()
    load("09_googlenet", "train").main([*FAST, "--torchvision-compat", "--no-aux", "--freeze-features", "--weights",
                                        str(tmp_path / "googlenet.pth"), "--output-dir", str(tmp_path / "run")])
    report = capsys.readouterr().out
    assert "shape-mismatched 2" in report and "unexpected (ignored) aux1.fc2.weight" in report
    tuned = torch.load(tmp_path / "run" / "last.pth", weights_only=True)
    assert tuned["model"]["fc.weight"].shape == (10, 1024) and not any(k.startswith("aux") for k in tuned["model"])
    key = "inception4c.branch3.1.conv.weight"
    assert tuned["model"][key].shape == (64, 24, 3, 3) and torch.equal(tuned["model"][key], source[key])
    frozen = [k for k in source if k.startswith(("conv", "inception"))]  # BatchNorm statistics stay frozen too
    assert frozen and all(torch.equal(tuned["model"][k], source[k]) for k in frozen)


def test_torchvision_weights_name_needs_compat_variant(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--torchvision-compat"):
        load("09_googlenet", "train").main([*FAST, "--weights", "GoogLeNet_Weights.IMAGENET1K_V1",
                                            "--output-dir", str(tmp_path)])
    assert not any(tmp_path.iterdir())  # rejected before anything was written


# ------------------------------------------------------------------------------------------ defaults, init, train mode
def test_defaults_dropouts_and_branch_kernels() -> None:
    """GoogLeNet(): 1000 classes, aux heads, the paper's 5×5 third branch and 40% dropout, aux dropout 0.7, no input
    transform; torchvision_compat: 3×3 and dropout 0.2; both dropouts can be set; the loss weighs aux heads 0.3."""
    with torch.device("meta"):
        paper, compat = G.GoogLeNet(), G.GoogLeNet(torchvision_compat=True)
        custom = G.build_model("googlenet", 5, torchvision_compat=True, dropout=0.5, dropout_aux=0.6)
        aux = G.InceptionAux(528, 10)
    assert paper.fc.out_features == paper.aux1.fc2.out_features == paper.aux2.fc2.out_features == 1000
    assert paper.aux_logits and not paper.transform_input and not compat.transform_input
    blocks = [m for m in paper.modules() if isinstance(m, G.Inception)]
    assert len(blocks) == 9 and {m.branch3[1].conv.kernel_size for m in blocks} == {(5, 5)}
    assert {m.branch3[1].conv.kernel_size for m in compat.modules() if isinstance(m, G.Inception)} == {(3, 3)}
    assert (paper.dropout.p, paper.aux1.dropout.p, paper.aux2.dropout.p) == (0.4, 0.7, 0.7)
    assert (compat.dropout.p, compat.aux1.dropout.p, compat.aux2.dropout.p) == (0.2, 0.7, 0.7)
    assert (custom.dropout.p, custom.aux1.dropout.p, custom.aux2.dropout.p, custom.fc.out_features) == (0.5, 0.6, 0.6, 5)
    assert aux.dropout.p == 0.7 and (aux.conv.conv.in_channels, aux.conv.conv.out_channels) == (528, 128)
    assert (aux.fc1.in_features, aux.fc1.out_features, aux.fc2.in_features) == (128 * 4 * 4, 1024, 1024)
    assert G.GoogLeNetLoss().aux_weight == 0.3
    with pytest.raises(ValueError, match=r"^unknown model 'inception_v3'; choose from \('googlenet',\)$"):
        G.build_model("inception_v3", 10)


def test_compat_initialisation_equals_torchvision() -> None:
    """With the same seed, a fresh torchvision_compat model holds exactly torchvision's initial weights: truncated
    normal (std 0.01) convs and linears, BN weight 1 and bias 0, aux heads included."""
    torch.manual_seed(0)
    ours = G.GoogLeNet(10, torchvision_compat=True).state_dict()
    torch.manual_seed(0)
    reference = _torchvision_googlenet(num_classes=10).state_dict()
    assert ours.keys() == reference.keys() and all(torch.equal(v, reference[k]) for k, v in ours.items())


def test_compat_train_mode_outputs_and_aux_heads_match_torchvision() -> None:
    """Train mode (dropout off, BN on batch statistics): logits and both aux heads equal torchvision's at 112×112, where
    4a's 7×7 map is pooled to 4×4 and maxpool4 rounds 7 up to 4 (ceil mode). torchvision returns (logits, aux2, aux1)."""
    torch.manual_seed(0)
    reference = _torchvision_googlenet(num_classes=5)
    ours = G.build_model("googlenet", 5, torchvision_compat=True)
    ours.load_state_dict(reference.state_dict(), strict=True)
    for model in (ours, reference):
        model.train()
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.eval()
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        logits, aux1, aux2 = ours(x)
        expected = reference(x)
    torch.testing.assert_close(logits, expected.logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(aux1, expected.aux_logits1, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(aux2, expected.aux_logits2, rtol=1e-5, atol=1e-6)


def test_transform_input_maps_imagenet_normalisation_to_caffe_scaling() -> None:
    """An image normalised with ImageNet's mean/std comes out as (image - 0.5) / 0.5, channel by channel: per channel
    c, x·(std_c / 0.5) + (mean_c - 0.5) / 0.5."""
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    image = torch.rand(2, 3, 5, 4)
    normalised = (image - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    with torch.device("meta"):
        model = G.GoogLeNet(aux_logits=False, transform_input=True)
    out = model._transform_input(normalised)
    torch.testing.assert_close(out, (image - 0.5) / 0.5)
    for c in range(3):
        torch.testing.assert_close(out[:, c], normalised[:, c] * (std[c] / 0.5) + (mean[c] - 0.5) / 0.5)


def test_load_without_aux_error_names_the_model() -> None:
    model = G.build_model("googlenet", 4, aux_logits=False)
    broken = {k: v for k, v in model.state_dict().items() if k != "fc.bias"}
    with pytest.raises(RuntimeError, match=r"^Error\(s\) in loading state_dict for GoogLeNet: missing keys \['fc.bias'\], "
                                           r"unexpected keys \[\]$"):
        G.load_without_aux(model, broken)


def test_forward_applies_transform_input_only_when_asked() -> None:
    """transform_input=True: forward(x) is the plain net's forward of _transform_input(x) (same weights)."""
    torch.manual_seed(0)
    plain = G.GoogLeNet(num_classes=3, aux_logits=False, transform_input=False).eval()
    caffe = G.GoogLeNet(num_classes=3, aux_logits=False, transform_input=True).eval()
    caffe.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 64, 64)
    seen = {}
    for name, net in (("plain", plain), ("caffe", caffe)):
        net.conv1.register_forward_pre_hook(lambda module, args, name=name: seen.__setitem__(name, args[0]))
    with torch.no_grad():
        torch.testing.assert_close(caffe(x), plain(plain._transform_input(x)))
        plain(x)
    assert torch.equal(seen["plain"], x) and torch.equal(seen["caffe"], caffe._transform_input(x))
