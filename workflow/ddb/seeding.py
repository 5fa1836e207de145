"""Seeds derived from (global seed, keys), so results never depend on sharding or job order."""

import hashlib
import random

import numpy as np
import torch


def derive_seed(global_seed: int, *keys: object) -> int:
    """A 63-bit seed that depends only on the global seed and the given keys (e.g. a sample id)."""
    text = "\x1f".join([str(int(global_seed)), *map(str, keys)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a CPU generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def numpy_rng(global_seed: int, *keys: object) -> np.random.Generator:
    return np.random.default_rng(derive_seed(global_seed, *keys))
