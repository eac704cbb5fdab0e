"""`Source`: a dataset split as light records plus a decoder; every dataset is one.

A leaf module: every source (folders, IDX, tensorflow-datasets, LSUN, shapes, the
in-memory cache) builds a `Source` and the pipeline (`pipeline`) reads one, so both import
this module and it imports neither.
"""
import dataclasses
from typing import Callable, Optional

import numpy as np
import tensorflow as tf


@dataclasses.dataclass
class Source:
    """A dataset split as records + a decoder.

    Attributes:
        name: dataset name.
        split: "train" or "test".
        num_examples: number of (readable) examples.
        records: () -> tf.data.Dataset of (record, label) in a fixed order; label is -1
            when the dataset has none.
        load: record -> uint8 image [H, W, C] (a TensorFlow function).
        num_classes: number of label classes, or None.
        skipped: unreadable files left out (folder datasets).
        max_shuffle_buffer: cap on the shuffle buffer (records may be whole encoded images).
        load_at_least: optional (record, min_side) -> uint8 image that may be smaller
            than `load`'s but keeps a short side >= min_side (JPEGs decoded at reduced
            scale); used before a centre-crop-and-resize to min_side.
        record_at: optional int64 index -> (record, label), the index-th of `records()`;
            sources that have it are ordered by a per-epoch permutation of indices and
            resume at any position at once (others stream, see `order`).
        ids: optional () -> list of str, a stable id of every record in order (a file
            path relative to the folder, an LMDB key, an index): what de-duplication
            reports and `--exclude_list` names.
        fetch: optional records [k] -> values [k] (one op for many records, e.g. one
            Python call reading k LMDB values); a source with it has `load` and
            `load_at_least` take a fetched value instead of a record. The pipelines
            fetch `pipeline.FETCH_BATCH` records at a time, after ordering and skipping.
    """
    name: str
    split: str
    num_examples: int
    records: Callable[[], tf.data.Dataset]
    load: Callable
    num_classes: Optional[int] = None
    skipped: int = 0
    max_shuffle_buffer: Optional[int] = None
    load_at_least: Optional[Callable] = None
    record_at: Optional[Callable] = None
    ids: Optional[Callable[[], list]] = None
    fetch: Optional[Callable] = None


def indexed_records(record_at, n):
    """records() of a source with random access: record_at(0), ..., record_at(n - 1)."""
    return lambda: tf.data.Dataset.range(n).map(record_at)


def array_source(name, split, images, labels=None):
    """A Source over in-memory uint8 images [N, H, W, C] (and int labels [N])."""
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 [N, H, W, C], got {images.dtype} {images.shape}")
    n = len(images)
    labels = np.full([n], -1, np.int64) if labels is None else np.asarray(labels, np.int64)
    table = tf.constant(images)
    label_table = tf.constant(labels)
    num_classes = int(labels.max()) + 1 if labels.size and labels.min() >= 0 else None
    record_at = lambda i: (i, tf.gather(label_table, i))  # noqa: E731
    return Source(
        name=name, split=split, num_examples=n, records=indexed_records(record_at, n),
        load=lambda i: tf.gather(table, i), num_classes=num_classes, record_at=record_at,
        ids=lambda: [str(i) for i in range(n)])
