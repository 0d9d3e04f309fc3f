"""export.py (common/export.py): the exported file computes what eval-mode PyTorch computes — ONNX in onnxruntime and
torch.export programs, with a free batch and, for segmentation, free odd H×W — and a file that does not is refused."""
from __future__ import annotations

import pytest
import torch

from common.errors import UserError
from util import load


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    load("03_cifar_train", "train").main(["--data", "synthetic", "--synthetic-size", "64", "-b", "32", "--epochs", "1",
                                          "--output-dir", str(root / "03")])
    load("06_fcn", "train").main(["--data", "synthetic", "--backbone", "light", "--synthetic-size", "8", "-b", "4",
                                  "--epochs", "1", "--image-size", "32", "--output-dir", str(root / "06")])
    return root


@pytest.mark.parametrize("fmt", ["onnx", "torch-export"])
def test_classification_export_matches_pytorch_with_a_free_batch(checkpoints, fmt, capsys):
    result = load("03_cifar_train", "export").main([str(checkpoints / "03" / "last.pth"), "--format", fmt, "--dynamic"])
    assert result["path"] == checkpoints / "03" / f"last.{'onnx' if fmt == 'onnx' else 'pt2'}" and result["path"].is_file()
    assert result["shape"] == (3, 10) and result["max_abs_diff"] <= 1e-4  # checked at batch 3, traced at 2
    if fmt == "onnx":  # the file is what --format says: an ONNX graph with the named input and output
        import onnx

        graph = onnx.load(str(result["path"])).graph
        assert [i.name for i in graph.input] == ["x"] and [o.name for o in graph.output] == ["logits"]
    else:
        assert torch.export.load(result["path"]).module()(torch.zeros(5, 3, 32, 32)).shape == (5, 10)
    assert "max |Δ|" in capsys.readouterr().out


def test_segmentation_onnx_export_takes_any_batch_and_odd_sizes(checkpoints):
    import onnxruntime

    result = load("06_fcn", "export").main([str(checkpoints / "06" / "last.pth"), "--dynamic",
                                            "--output", str(checkpoints / "fcn.onnx")])
    assert result["shape"] == (3, 6, 69, 69) and result["max_abs_diff"] <= 1e-4
    session = onnxruntime.InferenceSession(str(checkpoints / "fcn.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(1, 3, 45, 101)  # yet another size: the mask is the input's size
    model = load("06_fcn", "model")
    from common.predict import load_for_prediction

    net = load_for_prediction(checkpoints / "06" / "last.pth", model.build_model)[0]
    with torch.no_grad():
        expected = net(x)
    got = torch.from_numpy(session.run(None, {"x": x.numpy()})[0])
    assert got.shape == (1, 6, 45, 101) and (got - expected).abs().max() <= 1e-4


def test_a_dynamic_segmentation_torch_export_runs_at_free_sides_or_is_refused(checkpoints, tmp_path):
    """torch-export --dynamic for segmentation (a named H×W range made torch.export refuse 06 at export time): 04/07
    run at free sides; 06's pad to a multiple of 32 leaves guards that refuse the odd-size check, so its .pt2 is
    refused with a one-line error and removed, never kept broken."""
    with pytest.raises(UserError, match=r"fcn.pt2: the exported torch-export program cannot run a 3×3×69×69 input "
                                        r"\(Guard failed"):
        load("06_fcn", "export").main([str(checkpoints / "06" / "last.pth"), "--dynamic", "--format", "torch-export",
                                       "--output", str(checkpoints / "fcn.pt2")])
    assert not (checkpoints / "fcn.pt2").exists()
    torch.manual_seed(0)
    model = load("04_dilated_conv").build_model("hdc", num_classes=3)
    torch.save({"model": model.state_dict(), "model_name": "hdc", "model_kwargs": {}, "class_names": ["a", "b", "c"],
                "preprocess": {}, "args": {"image_size": 32}}, tmp_path / "last.pth")
    result = load("04_dilated_conv", "export").main([str(tmp_path / "last.pth"), "--dynamic",
                                                     "--format", "torch-export"])
    assert result["shape"] == (3, 3, 69, 69) and result["max_abs_diff"] <= 1e-4
    program = torch.export.load(result["path"]).module()
    with torch.no_grad():
        assert (program(x := torch.randn(1, 3, 32, 101)) - model.eval()(x)).abs().max() <= 1e-4


def test_an_export_that_differs_from_pytorch_is_refused_and_removed(checkpoints, monkeypatch):
    from common import export

    real_write = export.write
    monkeypatch.setattr(export, "write", lambda *a: (lambda t, run=real_write(*a): run(t) + 1e-3))
    out = checkpoints / "bad.pt2"
    with pytest.raises(UserError, match=r"bad.pt2: the exported model's output differs from PyTorch's .*max \|Δ\| 1.00e-03"):
        load("03_cifar_train", "export").main([str(checkpoints / "03" / "last.pth"), "--format", "torch-export",
                                               "--output", str(out)])
    assert not out.exists()
    torch.save({"weights": {}}, checkpoints / "other.pth")
    with pytest.raises(UserError, match=r"other.pth is not a checkpoint of this repo \(no 'model' state_dict inside\)$"):
        load("03_cifar_train", "export").main([str(checkpoints / "other.pth")])
    with pytest.raises(UserError, match="--image-size must be at least 1"):
        load("03_cifar_train", "export").main([str(checkpoints / "03" / "last.pth"), "--image-size", "0"])
    with pytest.raises(UserError, match=r"^--image-size 8: this model cannot run on a 8×8 input \(mat1 and mat2"):
        load("03_cifar_train", "export").main([str(checkpoints / "03" / "last.pth"), "--image-size", "8"])


def test_export_sizes_come_from_the_checkpoint():
    from common.export import example_size

    assert example_size({"preprocess": {"resize": [32, 32]}}) == 32
    assert example_size({"preprocess": {"resize": 256, "crop": 224}}) == 224
    assert example_size({"preprocess": {}, "args": {"crop_size": None, "image_size": 64}}) == 64
    assert example_size({}) == 224


# every other folder: its own architecture through ONNX (DeepLab's image pooling and GoogLeNet's ceil-mode pools with a
# free batch and, for segmentation, free H×W). The checkpoint is written by hand (random weights, eval-mode BatchNorm
# statistics): what is checked is that the file computes what PyTorch does, not what the net learned.
FOLDER_MODELS = {
    "01_dataset": ("smallcnn", {}, 32),
    "02_tensorboard_transforms": ("convnet", {}, 32),
    "04_dilated_conv": ("hdc", {"width": 8, "groups": 1}, 32),
    "05_mobilenet": ("mobilenet_v1", {"width_mult": 0.25}, 32),  # V2 = the same ops + adds, 2× the export time
    "07_deeplab": ("deeplabv3plus", {"backbone": "resnet18"}, 32),
    "08_transfer": ("tudui", {}, 32),  # torchvision's nets export in torchvision's own tests
    "09_googlenet": ("googlenet", {"aux_logits": False}, 32),
}


@pytest.mark.parametrize("folder", FOLDER_MODELS)
def test_every_folder_exports_to_onnx_that_matches_pytorch(folder, tmp_path):
    name, kwargs, size = FOLDER_MODELS[folder]
    torch.manual_seed(0)
    model = load(folder).build_model(name, num_classes=3, **kwargs)
    for m in model.modules():  # non-trivial running statistics, so eval-mode BatchNorm is really exercised
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    torch.save({"model": model.state_dict(), "model_name": name, "model_kwargs": kwargs, "class_names": ["a", "b", "c"],
                "preprocess": {}, "args": {"image_size": size}}, tmp_path / "last.pth")
    result = load(folder, "export").main([str(tmp_path / "last.pth"), "--dynamic"])
    segmentation = folder in ("04_dilated_conv", "07_deeplab")
    assert result["shape"] == ((3, 3, 69, 69) if segmentation else (3, 3))  # traced at 2×64², checked at 3×69²
    assert result["max_abs_diff"] <= 1e-4 and result["path"] == tmp_path / "last.onnx"
