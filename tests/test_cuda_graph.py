"""`--cuda-graph` (common/cuda_graph.py): refused where it cannot run; on CUDA, training with it gives the weights and
BatchNorm statistics eager training gives, the smaller last batch included (it runs eagerly into the graph's gradient
tensors). The capture itself needs a GPU; the eager path and the batch check run here too."""
import argparse
import math

import pytest
import torch
from torch import nn

from common import cli, engine, metrics, runtime
from common.cuda_graph import GraphedStep
from common.errors import UserError
from util import load

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def args_for(tmp_path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_common_args(parser, folder="x", data_choices=("synthetic",), epochs=2, batch_size=8, lr=0.1)
    return parser.parse_args(["--output-dir", str(tmp_path / "run"), *extra])


@pytest.mark.parametrize("extra, env, message", [
    (("--device", "cpu"), {}, r"^--cuda-graph needs CUDA \(--device cpu is cpu\)$"),
    (("--compile",), {}, r"^--cuda-graph and --compile are two ways to graph a step: pick one \(--compile-mode "
                         r"reduce-overhead is torch.compile's CUDA graphs\)$"),
    ((), {"WORLD_SIZE": "2"}, r"^--cuda-graph does not run under torchrun with several processes \(DDP's gradient hooks "
                              r"are not captured\); drop --cuda-graph or use one process$"),
])
def test_cuda_graph_is_refused_where_it_cannot_run(tmp_path, monkeypatch, extra, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(UserError, match=message):
        runtime.setup(args_for(tmp_path, "--cuda-graph", *extra))
    assert not (tmp_path / "run").exists()


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 4))


def test_the_eager_path_writes_into_the_existing_gradient_tensors():
    model, criterion = net(), nn.CrossEntropyLoss()
    step = GraphedStep(model, criterion, None, lambda loss: loss)
    x, y = torch.randn(5, 3, 6, 6), torch.tensor([0, 1, 2, 3, 0])
    for p in step.params:
        p.grad = torch.full_like(p, 7.0)  # what an earlier replay left there: must be replaced by this batch's
    tensors = [p.grad for p in step.params]
    loss = step.eager(x, y)
    reference = net()
    criterion(reference(x), y).backward()
    assert torch.allclose(loss, criterion(net()(x), y))
    for p, tensor, q in zip(step.params, tensors, reference.parameters()):
        assert p.grad is tensor  # same memory: a later replay's gradients are the ones the optimizer reads
        torch.testing.assert_close(p.grad, q.grad)
    assert step.fits(x, y)  # nothing captured yet: any batch fits and will set the shape
    step.graph = object()  # as if captured for batches of 8: a batch of 5 must not reach the graph
    step.images, step.targets = torch.empty(8, 3, 6, 6), torch.zeros(8, dtype=torch.long)
    assert not step.fits(x, y)
    torch.testing.assert_close(step(x, y), loss)
    for p, q in zip(step.params, reference.parameters()):
        torch.testing.assert_close(p.grad, q.grad)  # zeroed and written again, not added to the last batch's


def run(tmp_path, name: str, *extra: str, batches: int = 7) -> nn.Module:
    """Two epochs of `net()` with SGD + momentum on fixed batches, the last one smaller."""
    args = args_for(tmp_path / name, "--device", "cuda", "--use-deterministic-algorithms", "--no-amp", *extra)
    rt = runtime.setup(args)
    g = torch.Generator().manual_seed(1)
    train = [(torch.randn(3 if i == batches - 1 else 8, 3, 12, 12, generator=g), torch.randint(0, 4, (3 if i == batches - 1
              else 8,), generator=g)) for i in range(batches)]
    model = net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    engine.fit(model, nn.CrossEntropyLoss(), optimizer, train, train[:2], args=args, rt=rt,
               metric=metrics.classification_metric(4), meta=engine.Meta(model_name="net", class_names=list("abcd")))
    return model


@cuda
def test_cuda_graph_training_equals_eager_training_including_the_last_smaller_batch(tmp_path):
    eager, graphed = run(tmp_path, "eager"), run(tmp_path, "graph", "--cuda-graph")
    start = net().state_dict()
    for key, value in eager.state_dict().items():
        other = graphed.state_dict()[key]
        torch.testing.assert_close(other, value, rtol=1e-4, atol=1e-5, msg=key)
        if value.is_floating_point():
            assert not torch.equal(value.cpu(), start[key]), key  # it trained: the comparison is not of two inits
    assert int(graphed.state_dict()["1.num_batches_tracked"]) == 14  # 2 epochs × 7 steps: warm-up left no trace


@cuda
def test_03_trains_with_cuda_graph_and_saves_plain_weights(tmp_path):
    out = tmp_path / "run"
    summary = load("03_cifar_train", "train").main(["--data", "synthetic", "--synthetic-size", "200", "-b", "32",
                                                    "--epochs", "1", "--device", "cuda", "--cuda-graph",
                                                    "--output-dir", str(out)])
    assert math.isfinite(summary["metrics"]["loss"]) and summary["metrics"]["accuracy"] >= 0
    ckpt = torch.load(out / "last.pth", map_location="cpu", weights_only=True)
    assert all(v.dtype != torch.bfloat16 for v in ckpt["model"].values())


class AutocastProbe(nn.Module):
    """Records the autocast state its forward runs under, and can call `.item()` (a host sync no capture allows)."""

    def __init__(self, sync: bool = False) -> None:
        super().__init__()
        self.fc, self.sync, self.seen = nn.Linear(4, 2), sync, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda"),
                          torch.is_autocast_cache_enabled()))
        return self.fc(x * x.sum().item() if self.sync else x)


@cuda
def test_captured_and_eager_steps_run_under_the_runs_bf16_autocast_with_its_weight_cache_off():
    model = AutocastProbe().cuda()
    step = GraphedStep(model, nn.CrossEntropyLoss(), torch.bfloat16, lambda loss: loss)
    x, y = torch.randn(8, 4, device="cuda"), torch.randint(0, 2, (8,), device="cuda")
    step(x, y)  # warm-up and capture
    step(x[:3], y[:3])  # another shape: the eager path
    assert model.seen and set(model.seen) == {(True, torch.bfloat16, False)}
    model.seen.clear()
    GraphedStep(model, nn.CrossEntropyLoss(), None, lambda loss: loss)(x, y)  # --no-amp: autocast off
    assert model.seen and {enabled for enabled, _, _ in model.seen} == {False}


@cuda
def test_a_step_that_cannot_be_captured_is_a_one_line_error_naming_the_flag():
    model = AutocastProbe(sync=True).cuda()
    step = GraphedStep(model, nn.CrossEntropyLoss(), None, lambda loss: loss)
    x, y = torch.randn(8, 4, device="cuda"), torch.randint(0, 2, (8,), device="cuda")
    with pytest.raises(UserError, match=r"^--cuda-graph: this model's step cannot be captured as a CUDA graph "
                                        r"\((?!None\)).+\); train without --cuda-graph$"):  # torch's reason inside
        step(x, y)
