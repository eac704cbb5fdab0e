"""`--dataset=folder`: any directory tree of image files; unreadable files are skipped."""
import os

import tensorflow as tf
from absl import logging

from dcgan_keras.data import preprocessing
from dcgan_keras.data.errors import missing_data
from dcgan_keras.data.source import Source, indexed_records
from dcgan_keras.utils import files as files_lib

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def list_image_files(data_dir):
    """Sorted image files under data_dir, and the label of each (its top-level subfolder)."""
    if not data_dir or not os.path.isdir(data_dir):
        raise missing_data("folder", "train",
                           f"--data_dir={data_dir!r} is not a directory of images")
    paths = []
    for root, dirs, files in os.walk(data_dir, followlinks=True):
        dirs.sort()
        paths.extend(os.path.join(root, f) for f in sorted(files)
                     if f.lower().endswith(IMAGE_EXTENSIONS))
    if not paths:
        raise missing_data("folder", "train",
                           f"no {'/'.join(IMAGE_EXTENSIONS)} files under {data_dir}")
    tops = [os.path.relpath(p, data_dir).split(os.sep) for p in paths]
    classes = sorted({t[0] for t in tops if len(t) > 1})
    index = {c: i for i, c in enumerate(classes)}
    labels = [index[t[0]] if len(t) > 1 else -1 for t in tops]
    return paths, labels, classes


def readable_files(paths, index_cache=None):
    """Indices of the files that decode; unreadable ones are skipped and logged.

    Decoding every file once is the only reliable check (a truncated JPEG has a valid
    header), so the result is cached in `index_cache` (a JSON file) when given.
    """
    if index_cache and files_lib.exists(index_cache):
        cached = files_lib.read_json(index_cache)
        if cached.get("paths") == len(paths) and cached.get("first") == paths[0]:
            return cached["readable"]
    ds = tf.data.Dataset.from_tensor_slices((tf.range(len(paths)), paths))
    ds = ds.map(lambda i, p: (i, tf.shape(preprocessing.decode(tf.io.read_file(p), 3))[0]),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).ignore_errors()
    readable = [int(i) for i, height in ds.as_numpy_iterator() if height > 0]
    if index_cache:
        files_lib.write_json(index_cache,
                             {"paths": len(paths), "first": paths[0], "readable": readable})
    return readable


def folder_source(data_dir, split="train", index_cache=None):
    """Any directory tree of jpg/png/webp/bmp files; unreadable files are skipped."""
    paths, labels, classes = list_image_files(data_dir)
    keep = readable_files(paths, index_cache)
    skipped = len(paths) - len(keep)
    if skipped:
        bad = sorted(set(range(len(paths))) - set(keep))[:5]
        logging.warning("Skipped %d unreadable or corrupt image files of %d under %s, e.g. %s",
                        skipped, len(paths), data_dir, [paths[i] for i in bad])
    if not keep:
        raise missing_data("folder", split, f"none of the {len(paths)} files decode")
    kept_paths = tf.constant([paths[i] for i in keep])
    kept_labels = tf.constant([labels[i] for i in keep], tf.int64)
    record_at = lambda i: (tf.gather(kept_paths, i), tf.gather(kept_labels, i))  # noqa: E731
    return Source(
        name="folder", split=split, num_examples=len(keep),
        records=indexed_records(record_at, len(keep)),
        load=lambda path: preprocessing.decode(tf.io.read_file(path), 3),
        load_at_least=lambda path, side: preprocessing.decode(tf.io.read_file(path), 3, side),
        num_classes=len(classes) or None, skipped=skipped, record_at=record_at,
        ids=lambda: [os.path.relpath(paths[i], data_dir) for i in keep])
