"""Small IDX / MNIST files for the dataset and training tests."""

import gzip
import os

import numpy as np

from convlab.datasets import MNIST_FILES

_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
          np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def idx_bytes(array):
    """The IDX encoding of ``array``: written independently of the reader, from the format's definition."""
    array = np.asarray(array)
    header = bytes([0, 0, _CODES[array.dtype], array.ndim])
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path, data):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(data)
    return path


def write_mnist(directory, n_train=6, n_test=4, size=8, gz=("train_images",), **overrides):
    """The four standard files with small random content; ``overrides[role]`` replaces one file's bytes."""
    rng = np.random.default_rng(0)
    arrays = dict(train_images=rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
                  train_labels=rng.integers(0, 10, n_train, dtype=np.uint8),
                  test_images=rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
                  test_labels=rng.integers(0, 10, n_test, dtype=np.uint8))
    for role, (name, _) in MNIST_FILES.items():
        data = overrides.get(role, idx_bytes(arrays[role]))
        write(os.path.join(directory, name + (".gz" if role in gz else "")), data)
    return arrays
