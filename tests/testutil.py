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


def built_once(tmp_path_factory, name, build):
    """A directory that `build(path)` fills once per test run, shared by every xdist worker.

    Session fixtures are built once per worker process; a fixture that trains (a workdir
    for the binaries' tests) is worth building once. The first worker to ask builds it
    under a lock in the run's shared base directory; the others wait and reuse it.

    Args:
        tmp_path_factory: pytest's session fixture.
        name: the directory's name, unique among the fixtures that share this way.
        build: called with the directory's path (not yet existing); fills it.
    Returns:
        The directory's path (str).
    """
    import fcntl
    import shutil
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by the workers of this run
    path, done = str(root / name), str(root / f"{name}.done")
    with open(str(root / f"{name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(done):
            shutil.rmtree(path, ignore_errors=True)  # what a failed build left
            build(path)
            open(done, "w").close()
    return path


def run_binary(module, *args, timeout=600):
    """Runs `python -m module args` and returns the CompletedProcess (text)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, env=env)


def smooth_image(height, width, seed=0, channels=3):
    """A smooth random uint8 image (like a photo, unlike white noise)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (6, 6, channels)).astype(np.float64)
    rows = np.linspace(0, 5, height)
    cols = np.linspace(0, 5, width)
    r0, c0 = np.floor(rows).astype(int).clip(0, 4), np.floor(cols).astype(int).clip(0, 4)
    fr, fc = (rows - r0)[:, None, None], (cols - c0)[None, :, None]
    image = (coarse[r0][:, c0] * (1 - fr) * (1 - fc) + coarse[r0 + 1][:, c0] * fr * (1 - fc)
             + coarse[r0][:, c0 + 1] * (1 - fr) * fc + coarse[r0 + 1][:, c0 + 1] * fr * fc)
    return np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)


def encode_image(array, fmt, **kwargs):
    """uint8 [H, W, C] -> the bytes of a JPEG/PNG/WEBP file (Pillow)."""
    import io
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).save(
        buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def make_lsun_lmdb(directory, category="bedroom", split="train", num=24, side=(40, 52),
                   extra=None, seed=0):
    """An LMDB in LSUN's layout: directory/<category>_<split>_lmdb/data.mdb, values the WebP
    (even i) or JPEG (odd i) bytes of smooth images keyed by a 40-hex id.

    Args:
        extra: optional {key: bytes} written as well (e.g. corrupt values).
    Returns:
        (the LMDB directory, [keys of the images in key order], {key: uint8 image}).
    """
    import hashlib
    import lmdb
    path = os.path.join(directory, f"{category}_{split}_lmdb")
    os.makedirs(path, exist_ok=True)
    images = {}
    env = lmdb.open(path, map_size=1 << 26)
    with env.begin(write=True) as txn:
        for i in range(num):
            key = hashlib.sha1(f"{seed}-{i}".encode()).hexdigest()
            image = smooth_image(*side, seed=seed * 1000 + i)
            images[key] = image
            txn.put(key.encode(), encode_image(image, "WEBP" if i % 2 == 0 else "JPEG",
                                               quality=95))
        for key, value in (extra or {}).items():
            txn.put(key.encode(), value)
    env.close()
    return path, sorted(images), images


def egan_state(gan):
    """Every variable an E-GAN generation reads or writes, in a fixed order: D with its
    optimizer, the run's counters and step, and each parent with its optimizer."""
    state = list(gan.discriminator.weights) + gan.d_optimizer.variables + [
        gan.wins, gan.diversity_decided, gan.step]
    for parent, optimizer in zip(gan.parents, gan.parent_optimizers):
        state += gan._state(parent, optimizer)
    return state


def lively(model, scale=10.0):
    """Scales every kernel of an untrained model so that its outputs are O(1): with
    N(0, 0.02) kernels and BatchNorm's initial moving statistics a tiny G's images are
    ~1e-4 in inference mode, too close to 0 for comparisons to mean anything."""
    for variable in model.trainable_variables:
        if variable.path.endswith("kernel"):
            variable.assign(variable * scale)
    return model


def toy_generator(size=16, grid=4, units=4, planted=True, z_dim=8):
    """A generator with a known painter: z -> "feat" [grid, grid, units] (ReLU) -> bilinear
    upsampling to size -> 1x1 conv -> tanh image [size, size, 3].

    With `planted`, unit 0 draws red (the shapes segmenter's circle) over a grey background
    and the other units draw nothing; without it, the image does not depend on "feat".
    """
    import keras
    z = keras.Input([z_dim])
    x = keras.layers.Dense(grid * grid * units, name="project")(z)
    x = keras.layers.Reshape([grid, grid, units], name="reshape")(x)
    x = keras.layers.ReLU(name="feat")(x)
    x = keras.layers.UpSampling2D(size // grid, interpolation="bilinear", name="up")(x)
    x = keras.layers.Conv2D(3, 1, name="paint")(x)
    model = keras.Model(z, keras.layers.Activation("tanh", name="out")(x), name="toy")
    rng = np.random.default_rng(0)
    bias = np.zeros([grid * grid * units], np.float32)
    bias[0::units] = -4.0  # unit 0 is sparse: red covers ~14% of the pixels
    model.get_layer("project").set_weights([
        rng.normal(0, 1, [z_dim, grid * grid * units]).astype(np.float32), bias])
    kernel = np.zeros([1, 1, units, 3], np.float32)
    if planted:
        kernel[0, 0, 0] = [4.0, -2.0, -2.0]  # unit 0: red up, green and blue down
    model.get_layer("paint").set_weights([kernel, np.zeros([3], np.float32)])
    model.z_distribution = "normal"  # its bias -4 makes unit 0 sparse for z ~ N(0, 1)
    return model


def keras_and_fast_layer(cls, fast_cls, shape, seed, **kwargs):
    """Outputs and kernel gradients (of sum(y^2)) of a 4x4 / stride-2 / "same" Keras layer
    and its `fast_layers` twin with the same weights, on one input: [[y, dk] of Keras',
    [y, dk] of the fast one], float32 arrays."""
    import tensorflow as tf
    kwargs = dict(kernel_size=4, strides=2, padding="same", **kwargs)
    reference, fast = cls(**kwargs), fast_cls(**kwargs)
    x = tf.random.stateless_normal(shape, seed=seed)
    reference.build(shape)
    fast.build(shape)
    fast.set_weights(reference.get_weights())
    results = []
    for layer in (reference, fast):
        with tf.GradientTape() as tape:
            y = layer(x)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) ** 2)
        results.append([np.asarray(tf.cast(t, tf.float32))
                        for t in (y, tape.gradient(loss, layer.kernel))])
    return results
