"""convlab.datasets: the digits split and the MNIST IDX reader, on IDX files the tests write."""

import gzip
import os
import sys

import numpy as np
import pytest

from convlab.datasets import load_digits, load_mnist, parse_idx, read_idx
from tests.mnist_files import _CODES, idx_bytes, write, write_mnist


# --------------------------------------------------------------- IDX files
@pytest.mark.parametrize("dtype", list(_CODES))
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trips_every_type(tmp_path, dtype, gz):
    a = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype) if np.dtype(dtype).kind != "u" else \
        np.arange(24, dtype=dtype).reshape(2, 3, 4)
    path = write(tmp_path / ("a.idx" + (".gz" if gz else "")), idx_bytes(a))
    b = read_idx(path)
    assert b.dtype == a.dtype and b.dtype.isnative
    np.testing.assert_array_equal(b, a)


def test_mnist_magic_numbers_are_the_standard_ones():
    """2051 for images (ubyte, 3 dims) and 2049 for labels (ubyte, 1 dim)."""
    assert int.from_bytes(idx_bytes(np.zeros((1, 2, 2), np.uint8))[:4], "big") == 2051
    assert int.from_bytes(idx_bytes(np.zeros(1, np.uint8))[:4], "big") == 2049


GOOD = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))


@pytest.mark.parametrize("data, match", [
    (b"", "truncated IDX file: 0 bytes"),
    (GOOD[:3], "shorter than the 4-byte magic number"),
    (b"\x01\x00" + GOOD[2:], "not an IDX file: magic number 0100"),
    (GOOD[:2] + b"\x07" + GOOD[3:], "type code"),
    (GOOD[:3] + b"\x00", "0 dimensions"),
    (GOOD[:10], "truncated IDX header"),
    (GOOD[:-1], "IDX file truncated: header declares shape \\(3, 4\\)"),
    (GOOD + b"\x00", "has trailing bytes"),
    (GOOD[:3] + b"\x03" + GOOD[4:], "truncated"),  # 3 dims declared, 2 given: the data is read as a size
], ids=["empty", "short-magic", "bad-zero-bytes", "bad-type", "zero-dims", "short-header", "short-data",
        "trailing", "wrong-ndim"])
def test_corrupt_idx_files_raise_value_error_naming_the_file(tmp_path, data, match):
    path = write(tmp_path / "broken-idx1-ubyte", data)
    with pytest.raises(ValueError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_corrupt_gzip_raises_value_error_naming_the_file(tmp_path):
    not_gzip = write(tmp_path / "a-idx1-ubyte.gz.tmp", GOOD)
    os.rename(not_gzip, tmp_path / "a-idx1-ubyte.gz")
    with pytest.raises(ValueError, match=r"a-idx1-ubyte\.gz: not a valid gzip file"):
        read_idx(tmp_path / "a-idx1-ubyte.gz")
    truncated = tmp_path / "b-idx1-ubyte.gz"
    truncated.write_bytes(gzip.compress(GOOD)[:-10])
    with pytest.raises(ValueError, match=r"b-idx1-ubyte\.gz: not a valid gzip file"):
        read_idx(truncated)


def test_parse_idx_is_big_endian():
    data = bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFE])
    np.testing.assert_array_equal(parse_idx(data), [0x0102, -2])


# --------------------------------------------------------------- MNIST directory
def test_load_mnist_reads_the_four_files_plain_or_gzip(tmp_path):
    arrays = write_mnist(tmp_path, gz=("train_images", "test_labels"))
    data = load_mnist(tmp_path)
    assert data.x_train.shape == (6, 1, 8, 8) and data.x_test.shape == (4, 1, 8, 8)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    np.testing.assert_allclose(data.x_train[:, 0], arrays["train_images"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(data.y_test, arrays["test_labels"])


@pytest.mark.parametrize("overrides, match", [
    (dict(train_labels=idx_bytes(np.zeros(5, np.uint8))), "5 labels for 6 images"),
    (dict(test_labels=idx_bytes(np.full(4, 10, np.uint8))), "labels must be digits 0..9, but found 10"),
    (dict(test_images=idx_bytes(np.zeros((4, 8), np.uint8))), "expected 3-D unsigned bytes for test_images"),
    (dict(train_labels=idx_bytes(np.zeros(6, np.int32))), "expected 1-D unsigned bytes"),
    (dict(test_images=idx_bytes(np.zeros((4, 7, 7), np.uint8))), "image sizes differ"),
    (dict(test_images=idx_bytes(np.zeros((4, 8, 8), np.uint8))[:-3]), "t10k-images-idx3-ubyte: IDX file truncated"),
])
def test_load_mnist_rejects_inconsistent_files(tmp_path, overrides, match):
    write_mnist(tmp_path, **overrides)
    with pytest.raises(ValueError, match=match):
        load_mnist(tmp_path)


def test_load_mnist_names_a_missing_file(tmp_path):
    write_mnist(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte")
    with pytest.raises(FileNotFoundError, match=r"t10k-labels-idx1-ubyte \(or t10k-labels-idx1-ubyte.gz\)"):
        load_mnist(tmp_path)


# --------------------------------------------------------------- digits
def test_digits_split_is_stratified_and_seeded():
    data = load_digits()
    assert data.x_train.shape == (1347, 1, 8, 8) and data.x_test.shape == (450, 1, 8, 8)
    assert data.x_train.min() == 0 and data.x_train.max() == 1
    counts_train, counts_test = np.bincount(data.y_train), np.bincount(data.y_test)
    # stratified: each class's test share is within one image of 25 %
    assert np.all(np.abs(counts_test - 0.25 * (counts_train + counts_test)) <= 1)
    again, other = load_digits(), load_digits(seed=1)
    np.testing.assert_array_equal(data.y_test, again.y_test)
    assert not np.array_equal(data.y_test, other.y_test)


def test_digits_without_scikit_learn_says_how_to_install_it(monkeypatch):
    for name in ("sklearn", "sklearn.datasets", "sklearn.model_selection"):
        monkeypatch.setitem(sys.modules, name, None)  # makes the import fail
    with pytest.raises(ImportError, match=r'pip install -e "\.\[examples\]"'):
        load_digits()


# --------------------------------------------------------------- untrusted sizes
def _gzip_declaring(path, count, images):
    """A gzip IDX image file whose header declares ``count`` 28x28 images but holds ``images`` of them."""
    header = bytes([0, 0, 8, 3]) + b"".join(int(n).to_bytes(4, "big") for n in (count, 28, 28))
    path.write_bytes(gzip.compress(header + bytes(28 * 28 * images)))
    return path


def test_a_tiny_gzip_declaring_billions_of_images_is_refused_at_once(tmp_path):
    import tracemalloc

    path = _gzip_declaring(tmp_path / "bomb-idx3-ubyte.gz", 4_000_000_000, 3)
    for limit in (None, 2, 10**9):
        tracemalloc.start()
        try:
            with pytest.raises(ValueError, match="header declares shape \\(4000000000, 28, 28\\)") as info:
                read_idx(path, limit=limit)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert str(path) in str(info.value) and peak < 1 << 20, peak


def test_limit_reads_only_the_images_needed(tmp_path):
    import tracemalloc

    path = _gzip_declaring(tmp_path / "many-idx3-ubyte.gz", 20_000, 20_000)  # 15.7 MB of pixels, 15 kB of gzip
    tracemalloc.start()
    try:
        images = read_idx(path, limit=10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert images.shape == (10, 28, 28) and peak < 1 << 20, peak
    assert read_idx(path, limit=30_000).shape == (20_000, 28, 28)  # a limit above the count reads them all


def test_load_mnist_with_a_limit_still_checks_the_declared_counts(tmp_path):
    write_mnist(tmp_path, train_labels=idx_bytes(np.zeros(5, np.uint8)))
    with pytest.raises(ValueError, match="5 labels for 6 images"):
        load_mnist(tmp_path, limit=2)
    write_mnist(tmp_path)
    data = load_mnist(tmp_path, limit=2)
    assert data.x_train.shape[0] == 2 and data.y_test.shape == (2,)


@pytest.mark.parametrize("limit", [0, -1, 1.5, True])
def test_bad_limit_is_refused(tmp_path, limit):
    path = write(tmp_path / "a-idx1-ubyte", GOOD)
    with pytest.raises(ValueError, match="limit must be None or an int >= 1"):
        read_idx(path, limit=limit)
