"""Every model's dropout: where it sits, at which rate (the paper's or the reference implementation's), and that it acts
in training only. A changed rate or a dropout dropped from forward() fails here."""
import pytest
import torch
from torch import nn

from util import load

# (folder, model, kwargs, input size) → [(module name, p)], with where each value comes from
DROPOUT = [
    ("02_tensorboard_transforms", "convnet", {}, 32, [("dropout", 0.2)]),                     # this repo's choice
    ("05_mobilenet", "mobilenet_v1", {}, 32, [("classifier.0", 0.2)]),     # not in the V1 paper: 05's README says so
    ("05_mobilenet", "mobilenet_v2", {}, 32, [("classifier.0", 0.2)]),                        # torchvision's V2
    ("06_fcn", "fcn8s", {"backbone": "light"}, 64, [("fc.2", 0.5), ("fc.5", 0.5)]),           # VGG16's fc6 / fc7
    ("07_deeplab", "deeplabv1", {"backbone": "resnet18"}, 32, [("head.2", 0.5), ("head.5", 0.5)]),  # LargeFOV fc6/7
    ("07_deeplab", "deeplabv3", {"backbone": "resnet18", "aux": True}, 64,
     [("head.0.project.3", 0.1), ("aux.1", 0.1)]),                          # the DeepLab code's ASPP projection, FCN aux
    ("07_deeplab", "deeplabv3plus", {"backbone": "resnet18"}, 64, [("head.project.3", 0.1)]),
    ("09_googlenet", "googlenet", {}, 32, [("aux1.dropout", 0.7), ("aux2.dropout", 0.7), ("dropout", 0.4)]),  # paper
    ("09_googlenet", "googlenet", {"torchvision_compat": True}, 32,
     [("aux1.dropout", 0.7), ("aux2.dropout", 0.7), ("dropout", 0.2)]),                       # torchvision's port
]


@pytest.mark.parametrize("folder, name, kwargs, size, expected", DROPOUT,
                         ids=[f"{d[0]}-{d[1]}-{i}" for i, d in enumerate(DROPOUT)])
def test_dropout_rates_positions_and_train_only(folder, name, kwargs, size, expected):
    model = load(folder).build_model(name, 3, **kwargs)
    assert [(n, m.p) for n, m in model.named_modules() if isinstance(m, nn.Dropout)] == expected
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():  # FCN's zero-initialised score layers would hide everything before them
            if not p.any():
                p.normal_(0, 0.1)
    x = torch.randn(2, 3, size, size)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))  # eval: no dropout
        model.train()  # batch statistics are the same for the same batch: only dropout differs between the calls
        first, second = model(x), model(x)
    first, second = (o[0] if isinstance(o, tuple) else o for o in (first, second))
    assert not torch.equal(first, second), "dropout does not act in training"
