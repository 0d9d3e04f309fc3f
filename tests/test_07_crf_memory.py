"""07_deeplab CRF memory (issue 11): tiling with a halo is exact, the memory estimate, and the refusal of an image whose
CRF cannot fit, which must come as a one-line error before anything big is allocated."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from common.errors import UserError, cli_main
from util import load

CRF = load("07_deeplab", "crf")
PREDICT = load("07_deeplab", "predict")


def random_inputs(n: int, c: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random probabilities and a random-colour image: every pixel's neighbourhood differs, so a wrong halo shows."""
    g = torch.Generator().manual_seed(0)
    return (3 * torch.randn(n, c, h, w, generator=g)).softmax(1), 255 * torch.rand(n, 3, h, w, generator=g)


@pytest.mark.parametrize("shape, window, dilation, iterations, tiles", [
    ((1, 3, 23, 37), 3, 1, 2, [4, 7, 10, 23]),   # tiles that do not divide the image, and one as high as it
    ((2, 4, 19, 26), 5, 2, 3, [5, 9]),           # halo (16) wider than the tile
    ((1, 2, 17, 15), 3, 3, 1, [6]),
    ((1, 3, 11, 13), 5, 1, 0, [3]),              # no iterations: the input comes back, no halo needed
])
def test_tiled_crf_equals_untiled(shape: tuple[int, int, int, int], window: int, dilation: int, iterations: int,
                                  tiles: list[int]) -> None:
    probs, image = random_inputs(*shape)
    params = {"window": window, "dilation": dilation, "iterations": iterations, "bilateral_rgb": 40.0}
    whole = CRF.crf_refine(probs, image, CRF.CRFParams(tile=max(shape[-2:]), **params))
    for tile in tiles:
        tiled = CRF.crf_refine(probs, image, CRF.CRFParams(tile=tile, **params))
        assert tiled.shape == whole.shape and tiled.dtype == torch.float32
        assert torch.allclose(tiled, whole, atol=1e-5, rtol=0), (tile, (tiled - whole).abs().max())


def test_halo_is_iterations_plus_one_reaches(monkeypatch) -> None:
    """The naive halo T·r is not enough (a neighbour's normalisation looks one r further); (T + 1)·r is exact."""
    assert CRF.halo(CRF.CRFParams()) == 60 and CRF.halo(CRF.CRFParams(iterations=0)) == 0
    params = CRF.CRFParams(window=3, dilation=2, iterations=2, tile=6, bilateral_rgb=40.0)  # r = 2
    probs, image = random_inputs(1, 3, 24, 22)
    whole = CRF.crf_refine(probs, image, CRF.CRFParams(window=3, dilation=2, iterations=2, bilateral_rgb=40.0))
    assert CRF.halo(params) == 6
    assert torch.allclose(CRF.crf_refine(probs, image, params), whole, atol=1e-5, rtol=0)
    monkeypatch.setattr(CRF, "halo", lambda p: p.iterations * CRF.reach(p))
    assert (CRF.crf_refine(probs, image, params) - whole).abs().max() > 1e-3


def test_memory_estimate_is_bounded_by_the_tile_beyond_the_scores() -> None:
    p = CRF.CRFParams()                                             # tile 512 + 2·60 halo: pieces of 632²
    small, large = CRF.memory_bytes((1, 21, 300, 400), p), CRF.memory_bytes((1, 21, 301, 400), p)
    assert large - small == 4 * 21 * 400 + 8 * 420 * (120 + 6 * 21 + 16)  # below one piece: the working set (its
    # width padded by r = 10 each side; 8 bytes a value, allocator slack included) grows with the image
    big, huge = CRF.memory_bytes((1, 21, 2000, 2000), p), CRF.memory_bytes((1, 21, 3000, 4000), p)
    assert huge - big == 4 * 21 * (12_000_000 - 4_000_000)          # beyond: only the full-size result grows
    assert huge - 4 * 21 * 12_000_000 < 0.85 * 2 ** 30               # the working set's estimate stays < 0.9 GB
    assert CRF.memory_bytes((2, 21, 3000, 4000), p) == 2 * huge
    assert CRF.memory_bytes((1, 21, 3000, 4000), CRF.CRFParams(tile=128)) < huge
    assert CRF.memory_bytes((1, 21, 3000, 4000), CRF.CRFParams(iterations=10)) > huge  # wider halo


class LargestAllocation(TorchDispatchMode):
    """Records the bytes of the largest storage any operator allocates. An output that shares an input's storage (a
    view such as a tile cut out of the inputs, or an in-place result) allocates nothing and is skipped."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in inputs:
                self.largest = max(self.largest, t.untyped_storage().nbytes())
        return out


def test_no_tensor_grows_with_the_window_times_the_image() -> None:
    """Untiled, the cached weights are (window² − 1)·H·W floats; tiled, nothing is bigger than the C×H×W result."""
    probs, image = random_inputs(1, 4, 48, 48)
    result_bytes = 4 * probs.numel()
    sizes = {}
    for tile in (8, 48):
        with LargestAllocation() as mode:
            CRF.crf_refine(probs, image, CRF.CRFParams(window=5, dilation=1, iterations=1, tile=tile))
        sizes[tile] = mode.largest
    assert sizes[8] == result_bytes
    assert sizes[48] >= 4 * 24 * 48 * 48 > 5 * result_bytes  # 24 weight maps of the whole image


def fake_checkpoint(tmp_path: Path, classes: int = 21) -> Path:
    """All the memory check reads from a checkpoint is its class list; the model never gets built in these tests."""
    path = tmp_path / "ckpt.pth"
    torch.save({"model": {}, "class_names": [f"class{i}" for i in range(classes)]}, path)
    return path


def test_refusal_names_the_image_before_the_model_runs(tmp_path, monkeypatch) -> None:
    ckpt = fake_checkpoint(tmp_path)
    Image.new("RGB", (64, 48)).save(tmp_path / "photo.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")       # unreadable: left to seg_predict.run to report

    def run(args, build_model, postprocess) -> int:
        ran.append(postprocess)
        return 0

    ran: list = []
    monkeypatch.setattr(PREDICT.seg_predict, "run", run)
    argv = [str(ckpt), str(tmp_path / "broken.png"), str(tmp_path / "photo.png"), "--crf", "--crf-tile", "16"]
    params = PREDICT.CRFParams(tile=16)  # predict.py's own import of crf.py: its class, for the comparison below
    need = PREDICT.input_bytes(48, 64, 21) + PREDICT.memory_bytes((1, 21, 48, 64), params)
    monkeypatch.setattr(PREDICT, "available_memory", lambda device: need - 1)
    with pytest.raises(UserError) as refused:
        PREDICT.main(argv)
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / 'photo.png'}: --crf on this 64×48 image needs about ")
    assert "for 21 classes" in message and "--crf-tile 16 tile" in message and "\n" not in message
    assert ran == []                                           # refused before the model was loaded or ran
    monkeypatch.setattr(PREDICT, "available_memory", lambda device: need)
    assert PREDICT.main(argv) == 0 and ran[0].keywords["params"] == params
    monkeypatch.setattr(PREDICT, "available_memory", lambda device: None)  # unknown (not Linux): no check
    assert PREDICT.main([*argv[:-2], "--crf-tile", "100000"]) == 0
    assert PREDICT.main([str(ckpt), str(tmp_path / "photo.png")]) == 0  # without --crf nothing is checked


def test_cli_prints_one_error_line_and_exits_2(tmp_path, monkeypatch, capsys) -> None:
    Image.new("RGB", (40, 30)).save(tmp_path / "photo.png")
    monkeypatch.setattr(PREDICT, "available_memory", lambda device: 1000)
    with pytest.raises(SystemExit) as exited:
        cli_main(lambda: PREDICT.main([str(fake_checkpoint(tmp_path)), str(tmp_path / "photo.png"), "--crf"]))
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "40×30" in err and "GiB" in err


def test_available_memory_on_this_machine() -> None:
    """Linux: MemAvailable, which is at most MemTotal; an unknown device kind: None (the check is skipped)."""
    available = PREDICT.available_memory(torch.device("cpu"))
    total = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0]) * 1024
    assert 0 < available <= total
    assert PREDICT.available_memory(torch.device("meta")) is None


def test_crf_demo_measures_memory_next_to_the_estimate(capsys) -> None:
    """`crf_demo.py --memory H W`: the README table's row (one size per process there; here only its shape)."""
    demo = load("07_deeplab", "crf_demo")
    result = demo.main(["--memory", "30", "40", "--classes", "3", "--crf-tile", "16"])
    params = demo.CRFParams(tile=16)
    assert result["estimate_mb"] == demo.memory_bytes((1, 3, 30, 40), params) / 2 ** 20
    assert result["measured_mb"] >= 0 and result["seconds"] > 0
    assert capsys.readouterr().out.startswith("| 40×30 | 3 | 16 | ")
