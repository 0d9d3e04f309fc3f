"""Grad-CAM (common/cam.py): on an image whose class is decided by one object, the map's mass lies on that object; the
stage explained is the last feature map of each folder's net; predict.py --cam writes one overlay per image."""
from __future__ import annotations

import torch
from PIL import Image
from torch import nn

from common.cam import cam_overlay, grad_cam, last_feature_map
from util import load


def colour_net() -> nn.Module:
    """Class 0 = how red the image is, class 1 = how blue: a 1×1 detector conv, ReLU (in place), global mean, identity."""
    detect = nn.Conv2d(3, 2, 1, bias=False)
    with torch.no_grad():
        detect.weight.copy_(torch.tensor([[1.0, -1, -1], [-1, -1, 1]]).view(2, 3, 1, 1))
    head = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
    return nn.Sequential(detect, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)


def test_the_cam_of_each_class_lies_on_the_object_that_decides_it() -> None:
    x = torch.zeros(1, 3, 32, 32)
    x[0, 0, 2:10, 3:11] = 1.0  # a red square, top left
    x[0, 2, 20:30, 18:30] = 1.0  # a blue rectangle, bottom right
    net = colour_net()
    red, index = grad_cam(net, x, class_index=0)
    assert index == 0 and red.shape == (32, 32) and red.max() == 1.0 and red.min() >= 0
    assert red[2:10, 3:11].sum() / red.sum() > 0.9  # bilinear upsampling of a 32×32 map is the identity: exact region
    blue, index = grad_cam(net, x)  # top-1: the blue area (120 px) beats the red one (64 px)
    assert index == 1 and blue[20:30, 18:30].sum() / blue.sum() > 0.9 and blue[2:10, 3:11].sum() == 0
    assert isinstance(last_feature_map(net, x), nn.ReLU)  # the last N×C×h×w output; the 1×1 pooled map is not one
    # explaining the conv itself, whose output the in-place ReLU then overwrites: still works, on the activated values
    at_conv, _ = grad_cam(net, x, class_index=0, layer=net[0])
    assert at_conv[2:10, 3:11].sum() / at_conv.sum() > 0.9


def test_evidence_against_the_class_is_cut_by_the_relu() -> None:
    """Class 0 = red minus blue: the blue object counts against it, so its map must be empty there (ReLU), not bright."""
    net = colour_net()
    with torch.no_grad():
        net[4].weight.copy_(torch.tensor([[1.0, -1.0], [0.0, 1.0]]))
    x = torch.zeros(1, 3, 32, 32)
    x[0, 0, 2:10, 3:11] = 1.0
    x[0, 2, 20:30, 18:30] = 1.0
    cam, _ = grad_cam(net, x, class_index=0)
    assert cam[20:30, 18:30].sum() == 0 and cam[2:10, 3:11].min() == 1.0


def test_the_explained_stage_is_each_nets_last_feature_map() -> None:
    tudui = load("03_cifar_train").build_model("tudui")
    assert last_feature_map(tudui, torch.zeros(1, 3, 32, 32)) is tudui.maxpool3
    googlenet = load("09_googlenet").build_model("googlenet", 5, aux_logits=False)
    assert last_feature_map(googlenet.eval(), torch.zeros(1, 3, 64, 64)) is googlenet.inception5b
    v2 = load("05_mobilenet").build_model("mobilenet_v2", 5, width_mult=0.25)
    assert last_feature_map(v2.eval(), torch.zeros(1, 3, 64, 64)) is v2.features


def test_overlay_has_the_image_size_and_predict_writes_one_cam_per_image(tmp_path, capsys) -> None:
    image = Image.new("RGB", (40, 30), (0, 0, 0))
    assert cam_overlay(image, torch.ones(8, 8)).size == (40, 30)
    train = load("03_cifar_train", "train")
    train.main(["--data", "synthetic", "--synthetic-size", "64", "-b", "32", "--epochs", "1",
                "--output-dir", str(tmp_path / "run")])
    for name in ("a", "b"):
        Image.new("RGB", (32, 32), (200, 20, 20)).save(tmp_path / f"{name}.png")
    assert load("03_cifar_train", "predict").main([str(tmp_path / "run" / "last.pth"), str(tmp_path / "a.png"),
                                                  str(tmp_path / "b.png"), "--cam"]) == 0
    for name in ("a", "b"):
        assert Image.open(tmp_path / "run" / "cam" / f"{name}_cam.png").size == (32, 32)
    assert capsys.readouterr().out.count("Grad-CAM of ") == 2


def test_the_overlay_blends_the_jet_map_upsampled_bilinearly_by_alpha() -> None:
    """Pixel values, not only the size: (1 − α)·image + α·jet(cam), the cam upsampled with bilinear interpolation."""
    import matplotlib
    import numpy as np

    image = Image.new("RGB", (4, 2), (100, 150, 200))
    cam = torch.tensor([[0.0, 1.0]])  # a left-to-right ramp once upsampled to 4 columns
    ramp = np.asarray(Image.fromarray(np.array([[0, 255]], np.uint8)).resize((4, 2), Image.BILINEAR)) / 255.0
    assert len(set(ramp[0].round(3))) == 4  # bilinear: four distinct columns (nearest would give two)
    for alpha in (0.25, 0.5):
        heat = matplotlib.colormaps["jet"](ramp)[..., :3]
        expected = ((1 - alpha) * np.array([100, 150, 200]) / 255 + alpha * heat) * 255
        got = cam_overlay(image, cam, alpha) if alpha != 0.5 else cam_overlay(image, cam)  # 0.5: the default
        assert np.abs(np.asarray(got, dtype=np.float64) - expected).max() <= 0.5 + 1e-6, alpha


def test_a_model_without_a_spatial_map_is_named_in_the_error() -> None:
    import pytest

    class Flat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x.mean((2, 3)))

    with pytest.raises(ValueError, match=r"^Flat has no module with a spatial feature map to explain"):
        last_feature_map(Flat(), torch.zeros(1, 3, 4, 4))
