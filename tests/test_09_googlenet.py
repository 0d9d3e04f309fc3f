"""09_googlenet: Inception branches, aux heads (training only, loss weight 0.3), torchvision parity, small inputs."""
from __future__ import annotations

import math
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


# ------------------------------------------------------------------------------------------ batch_norm=False, compare.py
def _basic_convs(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, G.BasicConv2d)]


def test_no_batch_norm_is_conv_bias_relu_with_the_same_outputs() -> None:
    """batch_norm=False (the paper's 2014 net): no BatchNorm anywhere, aux heads included; every conv has a bias; the
    Caffe init (uniform ±sqrt(3/fan_in), conv bias 0.2); the same outputs in train and eval mode."""
    torch.manual_seed(0)
    model = G.build_model("googlenet", 7, batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert not any(".bn." in k for k in model.state_dict())
    convs = _basic_convs(model)
    assert len(convs) == len(_basic_convs(G.build_model("googlenet", 7))) and all(c.conv.bias is not None for c in convs)
    weight = model.inception4c.branch2[1].conv.weight  # fan_in 128·3·3
    assert weight.abs().max() <= (3 / (128 * 9)) ** 0.5 and weight.std() > 0.9 * (1 / (128 * 9)) ** 0.5
    assert torch.equal(model.conv1.conv.bias, torch.full((64,), 0.2))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = model.train()(x)
        logits = model.eval()(x)
    assert isinstance(out, tuple) and [o.shape for o in out] == [(2, 7)] * 3 and logits.shape == (2, 7)


def test_batch_norm_default_is_unchanged() -> None:
    """batch_norm=True is the default and the model it builds is the one before the flag existed: the README's
    parameter count and, under the same seed, the same initial weights as an explicit batch_norm=True. Without BN each
    BasicConv2d trades BN's weight and bias (2C) for a conv bias (C)."""
    with torch.device("meta"):
        default, no_bn = G.GoogLeNet(), G.GoogLeNet(batch_norm=False)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(default) == 13_385_816
    assert count(default) - count(no_bn) == sum(c.conv.out_channels for c in _basic_convs(default))
    torch.manual_seed(0)
    implicit = G.build_model("googlenet", 10).state_dict()
    torch.manual_seed(0)
    explicit = G.build_model("googlenet", 10, batch_norm=True).state_dict()
    assert implicit.keys() == explicit.keys() and all(torch.equal(v, explicit[k]) for k, v in implicit.items())


C = load("09_googlenet", "compare")


@pytest.mark.parametrize("aux", [True, False])
def test_conv1_grad_norms_are_the_main_and_the_total_loss_gradients(aux: bool) -> None:
    """The norms `conv1_grad_norms` reports are those of d CE(main)/dW and d(training loss)/dW at conv1, computed
    here by two separate backward passes (dropout off, so both passes see the same network), and `.grad` holds the
    training loss's gradient for the optimizer. Without aux heads both norms are one number."""
    torch.manual_seed(0)
    model = G.build_model("googlenet", 3, aux_logits=aux, batch_norm=False, dropout=0.0, dropout_aux=0.0).train()
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 2])
    criterion = G.GoogLeNetLoss()
    loss, norms = C.conv1_grad_norms(model, criterion, x, y)
    grad = model.conv1.conv.weight.grad.clone()
    out = model(x)
    main = nn.functional.cross_entropy(out[0] if aux else out, y)
    expected_main = torch.autograd.grad(main, model.conv1.conv.weight, retain_graph=True)[0]
    expected_total = torch.autograd.grad(criterion(out, y), model.conv1.conv.weight)[0]
    torch.testing.assert_close(loss, criterion(out, y).detach())
    torch.testing.assert_close(grad, expected_total)
    assert norms["main"] == pytest.approx(expected_main.norm().item(), rel=1e-4)
    assert norms["total"] == pytest.approx(expected_total.norm().item(), rel=1e-4)
    assert (norms["main"] != pytest.approx(norms["total"], rel=1e-3)) if aux else norms["main"] == norms["total"]


def test_head_accuracies_reads_every_head_in_eval_mode() -> None:
    """Each head's accuracy is that of its own logits (captured by hooks) on the whole val set; BN statistics do not
    move (eval mode), the train/eval state is restored, and a model without aux heads gets NaN for them."""
    torch.manual_seed(0)
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 0, 1])
    loader = C.TensorLoader(images, labels, 2, train=False)
    model = G.build_model("googlenet", 3).train()
    logits: dict[str, list[torch.Tensor]] = {"aux1": [], "aux2": [], "main": []}
    for head in ("aux1", "aux2"):
        getattr(model, head).register_forward_hook(lambda m, i, o, head=head: logits[head].append(o))
    model.fc.register_forward_hook(lambda m, i, o: logits["main"].append(o))
    running = model.conv1.bn.running_mean.clone()
    acc = C.head_accuracies(model, loader)
    assert all(m.training for m in model.modules())  # train mode restored, every layer
    assert torch.equal(model.conv1.bn.running_mean, running)
    assert all(len(v) == 3 for v in logits.values())  # 2 + 2 + 1 images, every head on every batch
    for head, outs in logits.items():
        assert acc[head] == (torch.cat(outs).argmax(1) == labels).sum().item() / len(labels)
    no_aux = C.head_accuracies(G.build_model("googlenet", 3, aux_logits=False).eval(), loader)
    assert 0 <= no_aux["main"] <= 1 and math.isnan(no_aux["aux1"]) and math.isnan(no_aux["aux2"])


def test_compare_runs_every_variant_and_draws_both_figures(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rows = C.main(["--seeds", "1", "--steps", "2", "--log-every", "1", "--images", "4", "--batch", "2",
                   "--val-images", "2", "--image-size", "32", "--device", "cpu", "--assets", str(tmp_path)])
    out = capsys.readouterr().out
    assert [r["variant"] for r in rows] == list(C.VARIANTS)
    assert all([h["step"] for h in r["history"] if "grad_main" in h] == [0, 1] for r in rows)
    assert all(r["grad_ratio"] == 1.0 for r in rows if not C.VARIANTS[r["variant"]]["aux_logits"])
    assert "| no BN + aux |" in out and "training / main" in out and "`python " in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grad_norm.png", "head_accuracy.png"]


def test_compare_takes_the_class_count_and_the_optimizer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built, adamw = [], []
    real_build, real_adamw = C.build_model, torch.optim.AdamW
    monkeypatch.setattr(C, "build_model", lambda *a, **k: built.append(real_build(*a, **k)) or built[-1])
    monkeypatch.setattr(torch.optim, "AdamW", lambda params, **k: adamw.append(k) or real_adamw(params, **k))
    monkeypatch.setattr(C, "VARIANTS", {"BN + aux": C.VARIANTS["BN + aux"]})
    monkeypatch.setattr(C, "figures", lambda *a: [])
    C.main(["--seeds", "1", "--steps", "1", "--log-every", "1", "--images", "6", "--batch", "3", "--val-images", "6",
            "--image-size", "32", "--classes", "3", "--opt", "adamw", "--lr", "0.002", "--assets", str(tmp_path)])
    assert [m.fc.out_features for m in built] == [3] and adamw == [{"lr": 0.002, "weight_decay": 0.05}]
    assert [m.aux1.fc2.out_features for m in built] == [3]


@pytest.mark.parametrize("flags, message", [(["--images", "4", "--batch", "8"], "no full batch"),
                                            (["--seeds", "0"], "--seeds must be at least 1"),
                                            (["--classes", "11"], r"--classes must be in \[2, 10\]"),
                                            (["--image-size", "8"], "--image-size must be at least 15")])
def test_compare_refuses_a_budget_that_cannot_run(tmp_path: Path, flags: list[str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        C.main(["--quick", *flags, "--assets", str(tmp_path)])
    assert not any(tmp_path.iterdir())
