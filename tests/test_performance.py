"""Issue 8's DataLoader path: the settings common.data.make_loaders gives the notes' DataLoader."""
import argparse

import pytest
import torch

from common import data
from common.runtime import Runtime
from common.synthetic import SyntheticShapes


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_path_settings(workers):
    """Pinned memory only where a GPU copies from it; persistent workers whenever there are workers."""
    args = argparse.Namespace(workers=workers, batch_size=8, eval_batch_size=None, seed=0)
    dataset = SyntheticShapes(16)
    train, val = data.make_loaders(dataset, dataset, args, Runtime(device=torch.device("cpu")))
    for loader in (train, val):
        assert loader.num_workers == workers and loader.persistent_workers == (workers > 0)
        assert loader.pin_memory is False
    assert val.batch_size == 16  # evaluation batches default to twice the training batch
