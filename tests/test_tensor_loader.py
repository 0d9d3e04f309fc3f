"""common.tensor_loader.TensorLoader: the device-resident loader 03/05/09 train with by default (issue 8).

Labels are set to the sample index, so every yielded label says exactly which source image a batch row came from.
"""
import itertools

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

from common.tensor_loader import TensorLoader

N, H, W = 50, 8, 10  # small, non-square, N not a multiple of the batch size


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """N×H×W×3 uint8 like CIFAR10.data; random pixels, so every crop offset and flip gives a distinct image."""
    return torch.from_numpy(np.random.default_rng(0).integers(0, 256, (N, H, W, 3), dtype=np.uint8))


def make(images, batch_size=8, **kwargs) -> TensorLoader:
    kwargs.setdefault("train", True)
    return TensorLoader(images, torch.arange(len(images)), batch_size, **kwargs)


def epoch_batches(loader: TensorLoader, epoch: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader.set_epoch(epoch)
    return list(loader)


def labels_of(batches) -> list[int]:
    return [int(i) for _, y in batches for i in y]


@pytest.mark.parametrize("drop_last", [False, True])
def test_every_sample_exactly_once_per_epoch(images, drop_last):
    loader = make(images, drop_last=drop_last)
    for epoch in range(3):
        batches = epoch_batches(loader, epoch)
        seen = labels_of(batches)
        assert len(batches) == len(loader)
        assert len(seen) == len(set(seen))  # no repeats
        if drop_last:
            assert len(seen) == N // 8 * 8 and all(len(y) == 8 for _, y in batches)
        else:
            assert sorted(seen) == list(range(N))


def test_eval_mode_is_in_order_without_augmentation(images):
    loader = make(images, batch_size=16, train=False, crop_padding=4, flip=True)
    batches = epoch_batches(loader)
    assert labels_of(batches) == list(range(N)) and len(batches) == len(loader) == 4  # 50 / 16, last batch kept
    out = torch.cat([x for x, _ in batches])
    assert torch.equal(out, images.permute(0, 3, 1, 2).float() / 255)  # ToTensor's values, NCHW


def test_nhwc_and_nchw_inputs_give_identical_batches(images):
    a = epoch_batches(make(images, crop_padding=2, flip=True, seed=3))
    b = epoch_batches(make(images.permute(0, 3, 1, 2).contiguous(), crop_padding=2, flip=True, seed=3))
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))


def reference(image_hwc: torch.Tensor, padding: int, top: int, left: int, flip: bool) -> torch.Tensor:
    """torchvision's RandomCrop(padding=p, fill 0) + RandomHorizontalFlip for given parameters, one image at a time."""
    img = TF.pad(image_hwc.permute(2, 0, 1), [padding])
    img = TF.crop(img, top, left, image_hwc.shape[0], image_hwc.shape[1])
    return TF.hflip(img) if flip else img


def crop_flip_params(loader: TensorLoader, images: torch.Tensor, p: int, epochs: int, mean=None, std=None) -> list:
    """(top, left, flip) of every sample the loader yields over `epochs` epochs, found by comparing it with the reference
    applied to its source image for every possible parameter; fails unless exactly one parameter set matches."""
    params = []
    for epoch in range(epochs):
        for x, y in epoch_batches(loader, epoch):
            for out, index in zip(x.cpu(), y.cpu()):
                source = images[index]
                matches = []
                for top, left, flip in itertools.product(range(2 * p + 1), range(2 * p + 1), (False, True)):
                    expected = reference(source, p, top, left, flip).float() / 255
                    expected = TF.normalize(expected, mean, std) if mean is not None else expected
                    if torch.allclose(out, expected, atol=1e-5):
                        matches.append((top, left, flip))
                assert len(matches) == 1, f"sample {int(index)} is not a crop/flip of its source image"
                params.append(matches[0])
    return params


def test_crops_and_flips_equal_torchvisions_per_image_reference(images):
    p, mean, std = 3, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    loader = make(images, crop_padding=p, flip=True, mean=mean, std=std, seed=1)
    params = crop_flip_params(loader, images, p, epochs=4, mean=mean, std=std)
    tops, lefts, flips = zip(*params)
    assert set(tops) == set(lefts) == set(range(2 * p + 1))  # every offset of the padded window is drawn
    assert 0.35 < np.mean(flips) < 0.65  # flip with probability one half
    assert (p, p, False) in params and any(t != p or l != p for t, l, _ in params)


@pytest.mark.parametrize("crop_padding, flip", [(2, False), (0, True)])
def test_crop_only_and_flip_only(images, crop_padding, flip):
    params = crop_flip_params(make(images, crop_padding=crop_padding, flip=flip), images, crop_padding, epochs=1)
    flips = [f for *_, f in params]
    assert 0.3 < np.mean(flips) < 0.7 if flip else not any(flips)
    offsets = {(t, l) for t, l, _ in params}
    assert offsets == {(0, 0)} if crop_padding == 0 else len(offsets) > 10


def test_zero_padding_fills_the_borders(images):
    white = torch.full_like(images, 255)
    loader = make(white, batch_size=N, crop_padding=4)
    x, _ = next(iter(loader))
    assert x.min() == 0 and x.max() == 1  # crops reach into the zero padding, like RandomCrop's default fill
    assert ((x == 0).sum((1, 2, 3)) > 0).float().mean() > 0.5


def test_no_augmentation_unless_asked(images):
    x, y = next(iter(make(images, batch_size=N)))
    assert torch.equal(x, images[y].permute(0, 3, 1, 2).float() / 255)


@pytest.mark.parametrize("world_size", [2, 3])
def test_shards_are_disjoint_and_equal_under_simulated_ranks(images, world_size):
    for epoch in (0, 1):
        loaders = [make(images, rank=r, world_size=world_size, crop_padding=2, flip=True, drop_last=False)
                   for r in range(world_size)]
        shards = [labels_of(epoch_batches(loader, epoch)) for loader in loaders]
        lengths = {len(s) for s in shards}
        assert lengths == {N // world_size}  # equal shares: every rank runs the same number of steps
        union = set().union(*shards)
        assert len(union) == world_size * (N // world_size)  # disjoint
        assert len({len(loader) for loader in loaders}) == 1
    evals = [labels_of(epoch_batches(make(images, train=False, rank=r, world_size=world_size)))
             for r in range(world_size)]
    assert sorted(itertools.chain(*evals)) == list(range(N))  # eval: every image exactly once over all ranks


def test_ranks_draw_different_augmentations(images):
    """Two ranks must not share one crop/flip stream (that would correlate their augmentations)."""
    same = torch.zeros_like(images)
    a, _ = next(iter(make(same + 200, batch_size=16, rank=0, world_size=2, crop_padding=4, flip=True)))
    b, _ = next(iter(make(same + 200, batch_size=16, rank=1, world_size=2, crop_padding=4, flip=True)))
    assert not torch.equal(a, b)


def test_same_seed_same_batches_different_seed_or_epoch_different_order(images):
    kwargs = dict(crop_padding=4, flip=True)
    first = epoch_batches(make(images, seed=7, **kwargs), epoch=2)
    again = epoch_batches(make(images, seed=7, **kwargs), epoch=2)
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(first, again))
    loader = make(images, seed=7, **kwargs)
    orders = {tuple(labels_of(epoch_batches(loader, e))) for e in range(4)}
    assert len(orders) == 4  # a fresh permutation every epoch
    back = epoch_batches(loader, epoch=2)  # set_epoch back to 2 (a resumed run) reproduces epoch 2 exactly
    assert all(torch.equal(xa, xb) for (xa, _), (xb, _) in zip(first, back))
    other = labels_of(epoch_batches(make(images, seed=8, **kwargs), epoch=2))
    assert other != labels_of(first)


def test_iterating_twice_without_set_epoch_repeats_the_epoch(images):
    loader = make(images, crop_padding=2, flip=True)
    a, b = list(loader), list(loader)
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))


def test_bad_input_is_rejected(images):
    with pytest.raises(ValueError, match="uint8"):
        TensorLoader(images.float(), torch.arange(N), 8, train=True)
    with pytest.raises(ValueError, match="labels"):
        TensorLoader(images, torch.arange(N - 1), 8, train=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_stay_on_the_device_and_match_the_cpu_order(images):
    cpu = make(images)
    gpu = make(images, device="cuda")
    assert gpu.images.is_cuda
    for (xc, yc), (xg, yg) in zip(cpu, gpu):
        assert xg.is_cuda and yg.is_cuda
        assert torch.equal(yc, yg.cpu()) and torch.equal(xc, xg.cpu())  # the permutation is drawn on the CPU
    augmented = make(images, device="cuda", crop_padding=3, flip=True)
    params = crop_flip_params(augmented, images, 3, epochs=2)  # crops/flips drawn and cut on the GPU are valid
    assert len(set(params)) > 20
