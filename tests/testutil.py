"""Helpers shared by the tests (import as `from testutil import ...`; a module of its own
because several directories have a conftest.py)."""
import gzip
import os
import struct
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_idx(path, array):
    """Writes a uint8 array as a gzipped IDX file (the MNIST format)."""
    array = np.asarray(array, np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def make_idx_dataset(directory, num_train=64, num_test=32, size=28, seed=0):
    """Tiny Fashion-MNIST-like IDX files: class k has a bright k-th horizontal band."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    for split, n in (("train", num_train), ("t10k", num_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, size, size)).astype(np.uint8)
        band = size // 10
        for i, k in enumerate(labels):
            images[i, k * band:(k + 1) * band] = 230
        write_idx(os.path.join(directory, f"{split}-images-idx3-ubyte.gz"), images)
        write_idx(os.path.join(directory, f"{split}-labels-idx1-ubyte.gz"), labels)
    return directory


def run_binary(module, *args, timeout=600):
    """Runs `python -m module args` and returns the CompletedProcess (text)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, env=env)


def lively(model, scale=10.0):
    """Scales every kernel of an untrained model so that its outputs are O(1): with
    N(0, 0.02) kernels and BatchNorm's initial moving statistics a tiny G's images are
    ~1e-4 in inference mode, too close to 0 for comparisons to mean anything."""
    for variable in model.trainable_variables:
        if variable.path.endswith("kernel"):
            variable.assign(variable * scale)
    return model
