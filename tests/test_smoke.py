"""Every numbered folder: its first model builds, runs forward on a small input and one SGD step changes its weights."""
import pytest
import torch
import torch.nn.functional as F

from util import FOLDERS, load


@pytest.mark.parametrize("folder", FOLDERS)
def test_forward_and_one_step(folder):
    torch.manual_seed(0)
    mod = load(folder)
    assert mod.MODELS, f"{folder}/model.py exposes no MODELS"
    model = mod.build_model(mod.MODELS[0], num_classes=3)
    size = getattr(mod, "INPUT_SIZE", 64)  # a model with a fixed input size says so
    x = torch.randn(2, 3, size, size)
    model.train()
    out = model(x)
    main = out[0] if isinstance(out, tuple) else out
    target = torch.randint(0, 3, (2, size, size) if main.dim() == 4 else (2,))
    loss = F.cross_entropy(main, target)
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    opt.zero_grad()
    loss.backward()
    opt.step()
    after = [p.detach() for p in model.parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(before, after)), "one step changed no weight"
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert isinstance(logits, torch.Tensor), "eval mode must return the logits tensor alone"
    assert logits.shape[:2] == (2, 3)
    if logits.dim() == 4:
        assert logits.shape[-2:] == (size, size), "segmentation logits must match the input size"
