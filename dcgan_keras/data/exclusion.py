"""Leaving records out of a dataset by id (`--exclude_list`, e.g. de-duplication's output).

An exclusion list is a text file with one record id a line, as
`python -m dcgan_keras.binaries.dedup` writes it: file paths relative to --data_dir for
folders, keys for LMDB (lsun), indices for IDX datasets. Blank lines and lines starting
with '#' are ignored.
"""
import dataclasses
import os

import tensorflow as tf
from absl import logging


def read_list(path):
    """The ids listed in the exclusion list at `path`.

    Raises:
        FileNotFoundError: there is no such file.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--exclude_list={path!r}: no such file (write one with "
                                "python -m dcgan_keras.binaries.dedup)")
    with open(path, encoding="utf-8") as f:
        lines = (line.rstrip("\n\r") for line in f)
        return [line for line in lines if line.strip() and not line.startswith("#")]


def exclude(source, excluded, path="the exclusion list"):
    """`source` without the records whose id is in `excluded`.

    Args:
        source: a source.Source with `ids` and `record_at`.
        excluded: iterable of record ids.
        path: where the ids came from (for messages).
    Returns:
        A Source over the remaining records, in the same relative order.
    Raises:
        ValueError: the source has no record ids, the list names ids but none of its
            records, or it names all of them. An empty list (de-duplication found
            nothing) leaves the source as it is.
    """
    wanted = set(excluded)
    if not wanted:
        logging.info("--exclude_list: %s lists no ids; nothing is left out", path)
        return source
    if source.ids is None or source.record_at is None:
        raise ValueError(f"--exclude_list: dataset {source.name!r} has no record ids; "
                         "exclusion lists work with lsun, folder, mnist and fashion_mnist")
    all_ids = source.ids()
    keep = [i for i, record_id in enumerate(all_ids) if record_id not in wanted]
    found = len(all_ids) - len(keep)
    if not found:
        example = next(iter(sorted(wanted)), "")
        raise ValueError(f"--exclude_list: {path} names no record of dataset "
                         f"{source.name!r} split {source.split!r} ({len(wanted)} ids, e.g. "
                         f"{example!r}; this dataset's ids look like {all_ids[0]!r})")
    if not keep:
        raise ValueError(f"--exclude_list: {path} excludes all {len(all_ids)} records")
    unknown = len(wanted) - found
    logging.info("--exclude_list: %d of %d records left out%s", found, len(all_ids),
                 f" ({unknown} listed ids are not in this dataset)" if unknown else "")
    table = tf.constant(keep, tf.int64)
    record_at = lambda j: source.record_at(tf.gather(table, j))  # noqa: E731
    n = len(keep)
    return dataclasses.replace(
        source, num_examples=n, record_at=record_at,
        records=lambda: tf.data.Dataset.range(n).map(record_at),
        ids=lambda: [all_ids[i] for i in keep])
