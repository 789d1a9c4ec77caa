"""Image classification data for the CNN example: scikit-learn's digits and MNIST IDX files.

Both loaders return a :class:`Split` of ``float32`` images of shape
``(N, 1, H, W)`` scaled to ``[0, 1]`` and ``int64`` labels.

The IDX format (LeCun et al., the MNIST files) is a big-endian header ---
two zero bytes, a type code, the number of dimensions ``d``, then ``d``
32-bit sizes --- followed by the array in C order. :func:`read_idx` checks
every part of it against the file's length, so a truncated, padded or
corrupt file raises :class:`ValueError` naming the file and the problem.
"""

import collections
import gzip
import math
import os
import zlib

import numpy as np

__all__ = ["Split", "load_digits", "read_idx", "load_mnist", "MNIST_FILES"]

Split = collections.namedtuple("Split", ["x_train", "y_train", "x_test", "y_test"])
Split.__doc__ = """Train and test images ``(N, 1, H, W)`` float32 in [0, 1], with int64 labels ``(N,)``.

Attributes
----------
x_train : ndarray, shape (N_train, 1, H, W), float32
y_train : ndarray, shape (N_train,), int64
x_test : ndarray, shape (N_test, 1, H, W), float32
y_test : ndarray, shape (N_test,), int64

Examples
--------
A named tuple, so it unpacks in field order:

>>> images = np.zeros((4, 1, 8, 8), np.float32)
>>> split = Split(images[:3], np.arange(3), images[3:], np.zeros(1, np.int64))
>>> x_train, y_train, x_test, y_test = split
>>> x_train.shape, split.x_test.shape
((3, 1, 8, 8), (1, 1, 8, 8))
"""

# IDX type code -> big-endian numpy dtype
IDX_DTYPES = {
    0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}

# the four standard MNIST files: role -> (file name, expected ndim)
MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte", 3),
    "train_labels": ("train-labels-idx1-ubyte", 1),
    "test_images": ("t10k-images-idx3-ubyte", 3),
    "test_labels": ("t10k-labels-idx1-ubyte", 1),
}


# --------------------------------------------------------------- scikit-learn digits
def load_digits(test_size=0.25, seed=0):
    """scikit-learn's 1,797 handwritten digits (8x8, bundled, no download), split stratified.

    Parameters
    ----------
    test_size : float, default 0.25
        Fraction of the images held out for testing (each class in proportion).
    seed : int, default 0
        Seed of the split.

    Returns
    -------
    Split
        ``x_*`` of shape ``(N, 1, 8, 8)``, float32 in ``[0, 1]`` (the raw values are 0..16).

    Raises
    ------
    ImportError
        When scikit-learn is not installed (``pip install -e ".[examples]"`` from the checkout).

    Examples
    --------
    >>> data = load_digits()
    >>> data.x_train.shape, data.x_test.shape, data.x_train.dtype
    ((1347, 1, 8, 8), (450, 1, 8, 8), dtype('float32'))
    """
    try:
        from sklearn.datasets import load_digits as sk_load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise ImportError('the digits data set needs scikit-learn: pip install -e ".[examples]" from the convlab '
                          "checkout") from None
    digits = sk_load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)
    return Split(x_train, y_train, x_test, y_test)


# --------------------------------------------------------------- IDX files
def _header(data, name):
    """``(dtype, shape, header bytes)`` from the start of an IDX file; ``data`` may hold more than the header."""
    if len(data) < 4:
        raise ValueError(f"{name}: truncated IDX file: {len(data)} bytes, shorter than the 4-byte magic number")
    zero, code, ndim = data[:2], data[2], data[3]
    if zero != b"\0\0" or code not in IDX_DTYPES:
        raise ValueError(f"{name}: not an IDX file: magic number {data[:4].hex()} must be 0000TTDD with type "
                         f"code TT in {{{', '.join(f'{c:02x}' for c in IDX_DTYPES)}}}")
    if ndim == 0:
        raise ValueError(f"{name}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{name}: truncated IDX header: {ndim} dimensions need {header} bytes, file has {len(data)}")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return IDX_DTYPES[code], shape, header


def _declared(name, dtype, shape, header):
    """Bytes the header declares (exact: Python ints cannot overflow), and how to say it in an error."""
    total = header + math.prod(shape) * dtype.itemsize
    return total, f"header declares shape {shape} of {dtype.newbyteorder('=')}, i.e. {total} bytes"


def parse_idx(data, name="<bytes>"):
    """Parse the bytes of an IDX file into an ndarray (native byte order); ``name`` labels errors.

    Examples
    --------
    >>> parse_idx(bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]))
    array([[1, 2, 3],
           [4, 5, 6]], dtype=uint8)
    """
    dtype, shape, header = _header(data, name)
    expected, declared = _declared(name, dtype, shape, header)
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "has trailing bytes"
        raise ValueError(f"{name}: IDX file {problem}: {declared}, but the file has {len(data)}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _gzip_size(path):
    """The uncompressed size modulo 2**32 that a gzip file's trailer records (its last 4 bytes)."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() < 18:  # a gzip member is at least a 10-byte header and an 8-byte trailer
            return None
        f.seek(-4, os.SEEK_END)
        return int.from_bytes(f.read(4), "little")


def read_idx(path, limit=None):
    """Read an IDX file (optionally gzip-compressed, by a ``.gz`` name) into an ndarray.

    The header is checked against the file before anything is allocated: a
    plain file's size must be what the header declares, a gzip file's
    trailer must record that size (modulo 2**32, as gzip stores it). The
    data are then streamed, and with ``limit`` only the first ``limit``
    entries along the first axis are decompressed and read.

    Parameters
    ----------
    path : str or os.PathLike
        The file; a name ending in ``.gz`` is decompressed with gzip.
    limit : int, optional
        Read at most this many entries (images, labels) along the first axis.

    Returns
    -------
    ndarray
        Of the shape the header declares (its first dimension cut to
        ``limit``) and its dtype, in native byte order.

    Raises
    ------
    ValueError
        Naming the file, when it is truncated, has trailing bytes, a wrong
        magic number, a size that disagrees with its header, or a corrupt
        gzip stream.

    Examples
    --------
    A 2x3 array of unsigned bytes: magic number ``00 00 08 02`` (type 0x08,
    2 dimensions), the big-endian sizes 2 and 3, then the six values:

    >>> import gzip, os, tempfile
    >>> data = bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     with gzip.open(os.path.join(d, "a.idx.gz"), "wb") as f:
    ...         _ = f.write(data)
    ...     read_idx(os.path.join(d, "a.idx.gz")), read_idx(os.path.join(d, "a.idx.gz"), limit=1)
    (array([[1, 2, 3],
           [4, 5, 6]], dtype=uint8), array([[1, 2, 3]], dtype=uint8))
    """
    name = os.fspath(path)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be None or an int >= 1, but got {limit!r}")
    if not str(name).endswith(".gz"):
        with open(path, "rb") as f:
            return _read_stream(f, name, os.fstat(f.fileno()).st_size, None, limit)
    try:
        with gzip.open(path, "rb") as f:
            return _read_stream(f, name, None, _gzip_size(path), limit)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ValueError(f"{name}: not a valid gzip file ({exc})") from None


def _read_stream(f, name, size, gzip_size, limit):
    """Header, then the checks against the file, then only the rows wanted (see :func:`read_idx`)."""
    head = f.read(4)
    if len(head) == 4 and head[:2] == b"\0\0":
        head += f.read(4 * head[3])
    dtype, shape, header = _header(head, name)
    expected, declared = _declared(name, dtype, shape, header)
    if size is not None and size != expected:
        problem = "truncated" if size < expected else "has trailing bytes"
        raise ValueError(f"{name}: IDX file {problem}: {declared}, but the file has {size}")
    if gzip_size is not None and gzip_size != expected % 2**32:
        raise ValueError(f"{name}: not a valid gzip file of this IDX data: {declared}, but the gzip trailer "
                         f"records {gzip_size} bytes (modulo 2**32): truncated or corrupt")
    rows = shape[0] if limit is None else min(shape[0], limit)
    row_bytes = math.prod(shape[1:]) * dtype.itemsize
    data = f.read(rows * row_bytes)
    if len(data) < rows * row_bytes:
        raise ValueError(f"{name}: IDX file truncated: {declared}, but the data end after "
                         f"{header + len(data)} bytes")
    if rows == shape[0] and f.read(1):
        raise ValueError(f"{name}: IDX file has trailing bytes: {declared}, but there are more")
    return np.frombuffer(data, dtype).reshape((rows, *shape[1:])).astype(dtype.newbyteorder("="))


def _find(directory, name):
    for candidate in (name, name + ".gz"):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"MNIST file {name} (or {name}.gz) not found in {directory!r}; --mnist DIR must hold "
                            f"{', '.join(n for n, _ in MNIST_FILES.values())}")


def _count(path):
    """The first dimension an IDX file's header declares (``None`` when unreadable: read_idx then says why)."""
    try:
        opener = gzip.open if os.fspath(path).endswith(".gz") else open
        with opener(path, "rb") as f:
            head = f.read(4)
            head += f.read(4 * head[3]) if len(head) == 4 else b""
        return _header(head, os.fspath(path))[1][0]
    except (ValueError, OSError, EOFError, zlib.error, IndexError):
        return None


def _check_mnist(arrays, paths):
    for role, (_, ndim) in MNIST_FILES.items():
        a = arrays[role]
        if a.ndim != ndim or a.dtype != np.uint8:
            raise ValueError(f"{paths[role]}: expected {ndim}-D unsigned bytes for {role}, but got "
                             f"{a.ndim}-D {a.dtype} of shape {a.shape}")
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(images) != len(labels):
            raise ValueError(f"{paths[split + '_labels']}: {len(labels)} labels for {len(images)} images in "
                             f"{paths[split + '_images']}")
        if labels.size and labels.max() > 9:
            raise ValueError(f"{paths[split + '_labels']}: labels must be digits 0..9, but found {labels.max()}")
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise ValueError(f"image sizes differ: {arrays['train_images'].shape[1:]} in {paths['train_images']}, "
                         f"{arrays['test_images'].shape[1:]} in {paths['test_images']}")


def load_mnist(directory, limit=None):
    """MNIST from the four standard IDX files in ``directory`` (each may be ``.gz``).

    Parameters
    ----------
    directory : str or os.PathLike
        Holds the files named in :data:`MNIST_FILES` (``train-images-idx3-ubyte``
        and so on), each plain or with a ``.gz`` suffix.
    limit : int, optional
        Read only the first ``limit`` images and labels of each split
        (:func:`read_idx` decompresses no more than that).

    Returns
    -------
    Split
        ``x_*`` of shape ``(N, 1, 28, 28)`` float32 in ``[0, 1]``, labels int64.

    Raises
    ------
    FileNotFoundError
        When a file is missing.
    ValueError
        Naming the file, when one is corrupt or the files disagree with each other.

    Examples
    --------
    Four tiny files in MNIST's format: three training and two test images of
    28x28 unsigned bytes, and their labels:

    >>> import os, tempfile
    >>> def idx(a):  # type code 0x08 (unsigned byte), ndim, big-endian sizes, data
    ...     return bytes([0, 0, 8, a.ndim]) + b"".join(n.to_bytes(4, "big") for n in a.shape) + a.tobytes()
    >>> arrays = {"train_images": np.full((3, 28, 28), 255, np.uint8), "train_labels": np.uint8([0, 1, 2]),
    ...           "test_images": np.zeros((2, 28, 28), np.uint8), "test_labels": np.uint8([7, 9])}
    >>> with tempfile.TemporaryDirectory() as d:
    ...     for role, (name, _) in MNIST_FILES.items():
    ...         with open(os.path.join(d, name), "wb") as f:
    ...             _ = f.write(idx(arrays[role]))
    ...     data = load_mnist(d)
    >>> data.x_train.shape, data.x_train.dtype, float(data.x_train.max()), data.y_test.tolist()
    ((3, 1, 28, 28), dtype('float32'), 1.0, [7, 9])
    """
    paths = {role: _find(directory, name) for role, (name, _) in MNIST_FILES.items()}
    counts = {role: _count(path) for role, path in paths.items()}
    for split in ("train", "test"):  # checked on the headers: with a limit, the arrays are cut
        images, labels = counts[f"{split}_images"], counts[f"{split}_labels"]
        if None not in (images, labels) and images != labels:
            raise ValueError(f"{paths[split + '_labels']}: {labels} labels for {images} images in "
                             f"{paths[split + '_images']}")
    arrays = {role: read_idx(path, limit) for role, path in paths.items()}
    _check_mnist(arrays, paths)

    def images(a):
        return (a.astype(np.float32) / 255.0)[:, None]

    return Split(images(arrays["train_images"]), arrays["train_labels"].astype(np.int64),
                 images(arrays["test_images"]), arrays["test_labels"].astype(np.int64))
