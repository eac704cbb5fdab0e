"""MNIST and Fashion-MNIST from MNIST-format IDX files, read offline.

The files are looked for, in order, in --data_dir, ~/.keras/datasets/<name>, and
/usr/share/datasets/<name> (Debian's dataset-fashion-mnist package), accepting both
"fashion_mnist" and "fashion-mnist" spellings, gzipped or not. Only when none exist does
`idx_source` download them (Keras).
"""
import gzip
import os

import keras
import numpy as np

from dcgan_keras.data import tfds_source
from dcgan_keras.data.errors import missing_data
from dcgan_keras.data.source import array_source

IDX_DATASETS = ("mnist", "fashion_mnist")
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# Searched after --data_dir, each with <name>/ below it.
SEARCH_ROOTS = ("~/.keras/datasets", "/usr/share/datasets")
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """Reads one IDX file (optionally .gz) into a NumPy array.

    Raises:
        ValueError: the file is not an IDX file or is truncated.
    """
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4]!r})")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_DTYPES[data[2]])
    offset = 4 + 4 * ndim
    expected = offset + int(np.prod(dims)) * dtype.itemsize
    if len(data) < expected:
        raise ValueError(f"{path} is truncated: {len(data)} bytes, expected {expected}")
    return np.frombuffer(data, dtype=dtype, count=int(np.prod(dims)), offset=offset).reshape(dims)


def candidate_dirs(name, data_dir=None):
    """Directories searched for the IDX files of dataset `name`, in order."""
    spellings = [name, name.replace("_", "-")]
    dirs = [data_dir] if data_dir else []
    for root in SEARCH_ROOTS:
        root = os.path.expanduser(root)
        dirs.extend(os.path.join(root, s) for s in dict.fromkeys(spellings))
    return dirs


def _find(directory, stem):
    for candidate in (stem + ".gz", stem):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


def find_idx_files(name, split, data_dir=None):
    """Returns (images_path, labels_path) of the first directory that has both, or None."""
    image_stem, label_stem = IDX_FILES[split]
    for directory in candidate_dirs(name, data_dir):
        images, labels = _find(directory, image_stem), _find(directory, label_stem)
        if images and labels:
            return images, labels
    return None


def load_idx_split(name, split, data_dir=None):
    """Returns uint8 images [N, H, W, 1] and int64 labels [N], or None if no files exist."""
    found = find_idx_files(name, split, data_dir)
    if found is None:
        return None
    images, labels = read_idx(found[0]), read_idx(found[1])
    if images.ndim != 3 or len(images) != len(labels):
        raise ValueError(f"IDX files {found} hold {images.shape} images and "
                         f"{labels.shape} labels; expected [N, H, W] and [N]")
    return images[..., None].astype(np.uint8), labels.astype(np.int64)


def how_to_get(name, split, data_dir=None):
    """The ways to provide dataset `name` offline (for MissingDataError)."""
    ways = [f"put the IDX files ({', '.join(IDX_FILES[split])}, optionally .gz) "
            f"in one of: {', '.join(candidate_dirs(name, data_dir))}"]
    if name == "fashion_mnist":
        ways.append("on Debian/Ubuntu: apt-get install dataset-fashion-mnist")
    if name in tfds_source.TFDS_DATASETS:
        ways.append(tfds_source.how_to_prepare(name))
    return ways


def idx_source(name, split, data_dir=None, allow_download=True):
    """MNIST / Fashion-MNIST from local IDX files; downloads (Keras) only if none exist."""
    arrays = load_idx_split(name, split, data_dir)
    if arrays is None and allow_download:
        try:
            loader = getattr(keras.datasets, name)
            (x_train, y_train), (x_test, y_test) = loader.load_data()
            x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
            arrays = (x[..., None].astype(np.uint8), y.astype(np.int64))
        except Exception as e:  # offline: name every way to provide the files
            raise missing_data(name, split, f"no local IDX files and the download failed: "
                               f"{type(e).__name__}: {e}",
                               how_to_get(name, split, data_dir)) from e
    if arrays is None:
        raise missing_data(name, split, "no local IDX files, downloads disabled",
                           how_to_get(name, split, data_dir))
    return array_source(name, split, *arrays)
