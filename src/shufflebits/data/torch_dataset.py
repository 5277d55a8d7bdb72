"""torch ``Dataset`` over image records and the P x K identity sampler for triplet training."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator

import numpy as np
from torch.utils.data import Dataset, Sampler

from ..errors import ShuffleBitsError
from .images import read_image
from .records import ImageRecord
from .transforms import to_unit_tensor


class ImageDataset(Dataset):
    """``dataset[i] -> (image_tensor, pid, camid, i)``; without a transform, a [0, 1] tensor."""

    def __init__(self, records: list[ImageRecord], transform: Callable | None = None) -> None:
        self.records = list(records)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        record = self.records[index]
        image = read_image(record.path)
        tensor = self.transform(image) if self.transform is not None else to_unit_tensor(image)
        return tensor, record.pid, record.camid, index


class RandomIdentitySampler(Sampler[int]):
    """torchreid's sampler: batches of P identities x K images (``batch_size = P * K``).

    Each epoch every identity's images are shuffled and cut into chunks of K
    (identities with fewer than K images are sampled with replacement); chunks
    of P random identities are emitted until fewer than P identities have
    chunks left. ``len()`` is torchreid's estimate, an upper bound on the
    indices an epoch yields. ``seed`` makes the epochs reproducible.
    """

    def __init__(self, records: list[ImageRecord], batch_size: int, num_instances: int, seed: int | None = None):
        if num_instances < 1 or batch_size < num_instances:
            raise ShuffleBitsError(f"batch_size ({batch_size}) must be at least num_instances ({num_instances}) >= 1")
        self.num_instances = num_instances
        self.pids_per_batch = batch_size // num_instances
        self.index_by_pid: dict[int, list[int]] = defaultdict(list)
        for index, record in enumerate(records):
            self.index_by_pid[record.pid].append(index)
        self.pids = list(self.index_by_pid)
        if len(self.pids) < self.pids_per_batch:
            raise ShuffleBitsError(
                f"{len(self.pids)} identities cannot fill batches of {self.pids_per_batch} identities"
            )
        self.rng = np.random.default_rng(seed)
        self.length = sum(
            max(len(indices), num_instances) // num_instances * num_instances for indices in self.index_by_pid.values()
        )

    def __iter__(self) -> Iterator[int]:
        chunks: dict[int, list[list[int]]] = {}
        k = self.num_instances
        for pid in self.pids:
            indices = np.array(self.index_by_pid[pid])
            if len(indices) < k:
                indices = self.rng.choice(indices, size=k, replace=True)
            indices = self.rng.permutation(indices)
            chunks[pid] = [indices[i : i + k].tolist() for i in range(0, len(indices) - k + 1, k)]
        available = list(self.pids)
        out: list[int] = []
        while len(available) >= self.pids_per_batch:
            chosen = self.rng.choice(len(available), size=self.pids_per_batch, replace=False)
            for pid in [available[i] for i in chosen]:
                out.extend(chunks[pid].pop(0))
                if not chunks[pid]:
                    available.remove(pid)
        return iter(out)

    def __len__(self) -> int:
        return self.length
