"""The one way files are written into a workdir: through tf.io.gfile, atomically.

Every writer puts the bytes under a temporary name next to the target and then renames
it over the target, so a reader (or a resumed run) sees either the old file or the new
one, never half of one. tf.io.gfile makes the same code work on gs:// and other file
systems TensorFlow knows (there a rename is a copy + delete: not atomic, but a reader
still never sees a partial object).
"""
import io
import json
import uuid

import numpy as np
import tensorflow as tf


def _tmp_name(path):
    # Unique per writer, so two processes writing the same file never share a temp name.
    return f"{path}.tmp-{uuid.uuid4().hex[:12]}"


def makedirs_for(path):
    """Creates the directory that will hold `path` (no-op if it exists)."""
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent:
        tf.io.gfile.makedirs(parent)


def write_bytes(path, data):
    """Writes `data` (bytes or str) to `path` atomically; returns `path`."""
    path = str(path)
    makedirs_for(path)
    tmp = _tmp_name(path)
    mode = "w" if isinstance(data, str) else "wb"
    try:
        with tf.io.gfile.GFile(tmp, mode) as f:
            f.write(data)
        tf.io.gfile.rename(tmp, path, overwrite=True)
    except BaseException:
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.remove(tmp)
        raise
    return path


def write_json(path, value, indent=2):
    """Writes `value` as JSON to `path` atomically."""
    return write_bytes(path, json.dumps(value, indent=indent, sort_keys=False) + "\n")


def read_json(path):
    with tf.io.gfile.GFile(str(path), "r") as f:
        return json.load(f)


def write_npz(path, **arrays):
    """Writes NumPy arrays as an .npz file atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return write_bytes(path, buffer.getvalue())


def write_npy(path, array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return write_bytes(path, buffer.getvalue())


def exists(path):
    return tf.io.gfile.exists(str(path))


def check_writable(directory):
    """Creates `directory` if needed and proves a file can be written into it and
    renamed (then removes it); raises OSError saying why not (read-only, full, a file in
    the way), before any work that would be lost."""
    directory = str(directory)
    probe = f"{directory.rstrip('/')}/.dcgan_keras_write_check"
    try:
        tf.io.gfile.makedirs(directory)
        write_bytes(probe, b"ok")
        tf.io.gfile.remove(probe)
    except (tf.errors.OpError, OSError) as e:
        reason = getattr(e, "message", None) or str(e) or type(e).__name__
        raise OSError(f"cannot write into {directory}: {reason.strip().splitlines()[0]}; "
                      "use a writable directory with free space") from None
