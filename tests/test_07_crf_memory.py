"""07_deeplab CRF memory (issue 11): tiling with a halo is exact, the memory estimate, and the refusal of an image whose
CRF cannot fit, which must come as a one-line error before anything big is allocated."""
from __future__ import annotations

import dataclasses
import math
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
    assert message.startswith(f"{tmp_path / 'photo.png'}: --crf at 64×48 needs about ")
    assert "for 21 classes" in message and "--crf-tile 16 tile" in message and "\n" not in message
    assert ran == []                                           # refused before the model was loaded or ran
    monkeypatch.setattr(PREDICT, "available_memory", lambda device: need)
    assert PREDICT.main(argv) == 0 and ran[0].keywords["params"] == params
    monkeypatch.setattr(PREDICT, "available_memory", lambda device: None)  # unknown (not Linux): no check
    assert PREDICT.main([*argv[:-2], "--crf-tile", "100000"]) == 0
    assert PREDICT.main([str(ckpt), str(tmp_path / "photo.png")]) == 0  # without --crf nothing is checked
    # above --max-megapixels the CRF runs at the working size (32×24 here), and that is what is checked
    small = PREDICT.input_bytes(24, 32, 21) + PREDICT.memory_bytes((1, 21, 24, 32), params)
    monkeypatch.setattr(PREDICT, "available_memory", lambda device: small)
    assert PREDICT.main([*argv, "--max-megapixels", str(32 * 24 / 1e6)]) == 0
    with pytest.raises(UserError, match=r"--crf at 64×48 needs about .*; lower --max-megapixels or --crf-tile"):
        PREDICT.main(argv)  # the same memory, at full size


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


# --- Mutation gaps (mutmut): the mean-field update, the kernels and the estimate checked against their formulas.

def reference_weights(image: torch.Tensor, p) -> dict:
    """crf.py's kernels written out pixel by pixel in float64, for one image (3×H×W): for pixel i and each j = i + o in
    the window (o ≠ 0, taps every `dilation` pixels up to r = window//2 · dilation, j inside the image),
    k_b(i, j) = exp(−|p_i − p_j|²/2θα² − |I_i − I_j|²/2θβ²), k_s(i, j) = exp(−|p_i − p_j|²/2θγ²),
    n_i = (1 + Σ_j k(i, j))^(−1/2) for each kernel, and K(i, j) = w1·n_i k_b(i, j) n_j + w2·n_i k_s(i, j) n_j."""
    image = image.double()
    h, w = image.shape[-2:]
    r = p.window // 2 * p.dilation
    taps = range(-r, r + 1, p.dilation)
    offsets = [(dy, dx) for dy in taps for dx in taps if (dy, dx) != (0, 0)]
    pixels = [(y, x) for y in range(h) for x in range(w)]
    neighbours = {i: [(i[0] + dy, i[1] + dx) for dy, dx in offsets if 0 <= i[0] + dy < h and 0 <= i[1] + dx < w]
                  for i in pixels}

    def kernels(i: tuple[int, int], j: tuple[int, int]) -> tuple[float, float]:
        d2 = (i[0] - j[0]) ** 2 + (i[1] - j[1]) ** 2
        colour = ((image[:, i[0], i[1]] - image[:, j[0], j[1]]) ** 2).sum().item()
        return (math.exp(-d2 / (2 * p.bilateral_xy ** 2) - colour / (2 * p.bilateral_rgb ** 2)),
                math.exp(-d2 / (2 * p.spatial_xy ** 2)))

    k = {(i, j): kernels(i, j) for i in pixels for j in neighbours[i]}
    norm = {i: [(1 + sum(k[i, j][t] for j in neighbours[i])) ** -0.5 for t in (0, 1)] for i in pixels}
    return {(i, j): p.bilateral_weight * norm[i][0] * kb * norm[j][0] + p.spatial_weight * norm[i][1] * ks * norm[j][1]
            for (i, j), (kb, ks) in k.items()}


def reference_crf(probs: torch.Tensor, image: torch.Tensor, p) -> torch.Tensor:
    """The mean-field update of crf.py's docstring (Potts): Q ← softmax(log P + Σ_j K(i, j) Q_j), from Q = P."""
    out = torch.empty(probs.shape, dtype=torch.float64)
    for b in range(probs.shape[0]):
        weights = reference_weights(image[b], p)
        unary = probs[b].double().clamp_min(1e-8).log()
        q = probs[b].double()
        for _ in range(p.iterations):
            message = torch.zeros_like(q)
            for (i, j), kij in weights.items():
                message[:, i[0], i[1]] += kij * q[:, j[0], j[1]]
            q = (unary + message).softmax(0)
        out[b] = q
    return out


@pytest.mark.parametrize("shape, params", [
    ((2, 3, 5, 7), {"window": 3, "dilation": 2, "iterations": 2}),
    ((1, 2, 6, 4), {"window": 5, "dilation": 1, "iterations": 1, "bilateral_weight": 2.5, "spatial_weight": 1.7}),
])
def test_mean_field_matches_the_docstring_formulas(shape, params) -> None:
    """Odd kernel widths (θα 2.3 px, θβ 37, θγ 1.6 px) so that no two terms of the formulas can be swapped unnoticed;
    a probability of exactly 0 takes the clamped log (1e-8)."""
    probs, image = random_inputs(*shape)
    probs[0, :, 0, 0] = torch.tensor([1.0] + [0.0] * (shape[1] - 1))
    p = CRF.CRFParams(bilateral_xy=2.3, bilateral_rgb=37.0, spatial_xy=1.6, tile=3, **params)
    expected = reference_crf(probs, image, p)
    assert torch.allclose(CRF.crf_refine(probs, image, p), expected.float(), atol=1e-5, rtol=0)
    assert torch.allclose(CRF.mean_field(probs, image, p), expected.float(), atol=1e-5, rtol=0)


def test_pairwise_weights_match_the_kernel_formulas_in_float64() -> None:
    """Offsets: the window's taps without (0, 0), row by row; weight o at pixel i is K(i, i + o), 0 where i + o leaves
    the image; a float64 image gives float64 weights, computed in float64 throughout."""
    image = 255 * torch.rand(2, 3, 6, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    p = CRF.CRFParams(window=5, dilation=2, bilateral_weight=2.5, bilateral_xy=2.3, bilateral_rgb=37.0,
                      spatial_weight=1.7, spatial_xy=1.6)
    offsets, weights = CRF.pairwise_weights(image, p)
    assert offsets == [(dy, dx) for dy in (-4, -2, 0, 2, 4) for dx in (-4, -2, 0, 2, 4) if (dy, dx) != (0, 0)]
    assert weights.shape == (24, 2, 1, 6, 7) and weights.dtype == torch.float64
    for b in range(2):
        expected = torch.zeros(24, 6, 7, dtype=torch.float64)
        for ((y, x), (y2, x2)), kij in reference_weights(image[b], p).items():
            expected[offsets.index((y2 - y, x2 - x)), y, x] = kij
        assert torch.allclose(weights[:, b, 0], expected, rtol=1e-12, atol=0)


def test_defaults_are_the_documented_ones() -> None:
    """README/CRFParams: 5 iterations, window 11 at dilation 2 (reach ±10 px), w1 5, θα 20 px, θβ 10, w2 1, θγ 3 px,
    tiles of 512 px."""
    assert dataclasses.asdict(CRF.CRFParams()) == {
        "iterations": 5, "window": 11, "dilation": 2, "bilateral_weight": 5.0, "bilateral_xy": 20.0,
        "bilateral_rgb": 10.0, "spatial_weight": 1.0, "spatial_xy": 3.0, "tile": 512}
    assert CRF.reach(CRF.CRFParams()) == 10 and CRF.reach(CRF.CRFParams(window=7, dilation=3)) == 9
    assert CRF.halo(CRF.CRFParams(iterations=1, window=3, dilation=1)) == 2
    assert CRF.halo(CRF.CRFParams(iterations=3, window=1)) == 0  # window 1: no neighbours, no halo


@pytest.mark.parametrize("field, bad, good", [
    ("iterations", -1, 0), ("window", 0, 1), ("window", -1, 1), ("window", 4, 3), ("dilation", 0, 1),
    ("bilateral_xy", 0.0, 1e-3), ("bilateral_rgb", 0.0, 1e-3), ("spatial_xy", 0.0, 1e-3),
    ("bilateral_xy", -1.0, 1e-3), ("tile", 0, 1),
])
def test_parameter_bounds(field: str, bad, good) -> None:
    with pytest.raises(ValueError, match="CRF needs iterations >= 0, an odd window >= 1 and dilation >= 1, got CRFParams"
                       if field in ("iterations", "window", "dilation") else
                       "CRF kernel widths must be positive, got CRFParams" if field != "tile" else
                       "CRF tile must be at least 1 pixel, got 0"):
        CRF.CRFParams(**{field: bad})
    assert getattr(CRF.CRFParams(**{field: good}), field) == good


def test_window_one_and_bad_shapes() -> None:
    """A 1×1 window has no neighbours: the result is the input; and every malformed input is refused."""
    probs, image = random_inputs(1, 3, 5, 6)
    assert torch.allclose(CRF.crf_refine(probs, image, CRF.CRFParams(window=1)), probs, atol=1e-6)
    for bad_probs, bad_image in [(probs[0], image), (probs, image[0]), (probs.expand(2, -1, -1, -1), image),
                                 (probs[..., :4, :], image), (probs[..., :5], image)]:
        with pytest.raises(ValueError, match=r"^CRF needs N×C×H×W probabilities and an N×3×H×W image of the same "
                                             r"size, got \("):
            CRF.crf_refine(bad_probs, bad_image)


def test_result_is_float32_on_the_inputs_device() -> None:
    """float32 whatever the default dtype, on the inputs' device (meta: shapes only, as a stand-in for CUDA)."""
    probs, image = random_inputs(1, 2, 6, 5)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        refined = CRF.crf_refine(probs.double(), image.double(), CRF.CRFParams(window=3, iterations=1, tile=4))
    finally:
        torch.set_default_dtype(default)
    assert refined.dtype == torch.float32
    assert torch.allclose(refined, CRF.crf_refine(probs, image, CRF.CRFParams(window=3, iterations=1)), atol=1e-6)
    meta = CRF.crf_refine(probs.to("meta"), image.to("meta"), CRF.CRFParams(window=3, iterations=1, tile=4))
    assert meta.device.type == "meta" and meta.shape == probs.shape and meta.dtype == torch.float32


def test_memory_estimate_formula() -> None:
    """working_bytes: 8 bytes × the largest piece (tile + 2·halo, clipped to the image, + 2r) × (window² − 1 weights +
    6·C + 16); memory_bytes adds the float32 result, 4·N·C·H·W."""
    p = CRF.CRFParams(window=5, dilation=3, iterations=2, tile=40)  # r = 6, halo 18, piece side 76
    assert CRF.working_bytes((1, 4, 30, 200), p) == 8 * (30 + 12) * (76 + 12) * (24 + 6 * 4 + 16)
    assert CRF.working_bytes((3, 4, 300, 50), p) == 3 * 8 * (76 + 12) * (50 + 12) * (24 + 6 * 4 + 16)
    assert CRF.memory_bytes((3, 4, 300, 50), p) == 4 * 3 * 4 * 300 * 50 + CRF.working_bytes((3, 4, 300, 50), p)
    no_halo = CRF.CRFParams(window=5, dilation=3, iterations=0, tile=40)
    assert CRF.working_bytes((1, 4, 300, 300), no_halo) == 8 * (40 + 12) ** 2 * (24 + 6 * 4 + 16)
