"""The errata tables in the folder READMEs: each row where the notes are wrong or outdated is checked here (or by the
test its row names), so a table entry cannot drift from what PyTorch and the code do."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from util import load


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_04_pytorch_has_padding_same_since_1_9() -> None:
    """Notes (膨胀卷积): "它的卷积参数中没有padding='SAME'的选项". nn.Conv2d(padding='same') keeps the size at stride 1,
    for the notes' 19×19 / 3×3 / rate 6 example and for even kernels too."""
    x = torch.zeros(1, 1, 19, 19)
    assert nn.Conv2d(1, 1, 3, padding="same", dilation=6)(x).shape == x.shape
    assert nn.Conv2d(1, 1, 4, padding="same")(x).shape == x.shape  # even kernel: padded 1 left, 2 right
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        nn.Conv2d(1, 1, 3, padding="same", stride=2)


def test_04_the_7x7_caption_is_two_stacked_layers() -> None:
    """Notes: "感受野为7*7，膨胀系数为2" under the picture of one rate-2 3×3 kernel, which alone spans 2(3−1)+1 = 5. The
    7×7 field is that of the picture's two layers: a 3×3 (rate 1), then the rate-2 3×3."""
    rf = load("04_dilated_conv", "receptive_field")
    assert rf.receptive_field([2]).shape == (5, 5)
    field = rf.receptive_field([1, 2])
    assert field.shape == (7, 7) and rf.count_holes(field) == 0


def test_06_upsampling_fcn32s_scores_twice_gives_pool4s_size_not_the_image() -> None:
    """Notes (FCN): "将底层（stride 32）的预测（FCN-32s）进行2倍的上采样得到原尺寸的图像，并与从pool4层…融合". Twice the
    stride-32 map is the stride-16 map (pool4's size), which is what gets added; the original size needs 32×."""
    fcn = load("06_fcn", "model").build_model("fcn16s", 3, backbone="light").eval()
    sizes = {}
    hooks = [fcn.score_pool4.register_forward_hook(lambda m, i, o: sizes.update(pool4=o.shape[-1])),
             fcn.upscore2.register_forward_hook(lambda m, i, o: sizes.update(up2=o.shape[-1])),
             fcn.score_fr.register_forward_hook(lambda m, i, o: sizes.update(score=o.shape[-1]))]
    with torch.no_grad():
        out = fcn(torch.zeros(1, 3, 224, 224))
    for h in hooks:
        h.remove()
    assert out.shape[-1] == 224 and sizes["pool4"] == 224 // 16
    assert sizes["up2"] == 2 * sizes["score"] == sizes["pool4"] == 14  # 2× the 7×7 scores: pool4's 14×14, not 224×224


def test_09_googlenet_keeps_one_fully_connected_layer() -> None:
    """Notes: "丢弃全连接层，使用平均池化层". GoogLeNet drops VGG-style FC stacks but keeps one FC classifier after the
    average pool (1024 → classes); the aux heads add two more each, used in training only."""
    net = load("09_googlenet", "model").build_model("googlenet", 10, aux_logits=False)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 1 and linears[0] is net.fc and (net.fc.in_features, net.fc.out_features) == (1024, 10)
    with_aux = load("09_googlenet", "model").build_model("googlenet", 10)
    assert sum(isinstance(m, nn.Linear) for m in with_aux.modules()) == 5
