"""LSUN scenes (Yu et al. 2015, arXiv:1506.03365) read from the LMDB files it ships as.

LSUN is distributed as one LMDB database per category and split
(`bedroom_train_lmdb/data.mdb`, `bedroom_val_lmdb/data.mdb`); each value is the WebP or
JPEG bytes of one image, keyed by the image's id. They are read here with the `lmdb`
package, as torchvision's LSUN dataset does (tensorflow-datasets' builder needs
tensorflow-io, which has no build for our TensorFlow).

Records are indices into the list of keys. After the records are ordered and skipped,
their values are fetched by key, `pipeline.FETCH_BATCH` per Python call (one read
transaction per thread), and decoded in tf.data. The key list (one cursor pass, ~3M
keys for bedrooms) is cached next to the run's data index, so the scan runs once.
"""
import io
import os
import re
import threading

import lmdb
import numpy as np
import tensorflow as tf
from absl import logging

from dcgan_keras.data import preprocessing
from dcgan_keras.data.errors import MissingDataError
from dcgan_keras.data.source import Source, indexed_records
from dcgan_keras.utils import files

DEFAULT_CATEGORY = "bedroom"
SCENE_CATEGORIES = ("bedroom", "bridge", "church_outdoor", "classroom", "conference_room",
                    "dining_room", "kitchen", "living_room", "restaurant", "tower")
SPLIT_NAMES = {"train": "train", "test": "val"}  # our split -> LSUN's
# Searched in order when --data_dir is not given; each may hold <category>_<split>_lmdb.
SEARCH_DIRS = ("$LSUN_DIR", "~/lsun", "~/.keras/datasets/lsun", "~/data/lsun",
               "/usr/share/datasets/lsun")
DOWNLOAD_URL = "http://dl.yf.io/lsun/scenes/{category}_{split}_lmdb.zip"
_PROGRESS_EVERY = 200_000


def lmdb_name(category, split):
    """'bedroom', 'train' -> 'bedroom_train_lmdb'."""
    return f"{category}_{SPLIT_NAMES[split]}_lmdb"


def how_to_get(category, split):
    return (f"get the LMDB files with `python download.py -c {category}` of "
            f"https://github.com/fyu/lsun or from "
            f"{DOWNLOAD_URL.format(category=category, split=SPLIT_NAMES[split])}, unzip, and "
            f"pass --data_dir=<the folder holding {lmdb_name(category, split)}> (or that "
            "folder itself) or set $LSUN_DIR")


def search_dirs():
    """The folders looked in when --data_dir is not given (existing or not), in order."""
    dirs = []
    for d in SEARCH_DIRS:
        if d.startswith("$"):
            d = os.environ.get(d[1:], "")
        if d:
            dirs.append(os.path.expanduser(d))
    return dirs


def _has_data(path):
    return os.path.isfile(os.path.join(path, "data.mdb"))


def find_lmdb(data_dir, split, category):
    """The LMDB directory of `category`'s `split`.

    `data_dir` is an LMDB directory (used for the train split; the test split is its
    `<category>_val_lmdb` sibling) or a folder holding `<category>_<split>_lmdb`. Without
    it, SEARCH_DIRS are tried.

    Raises:
        MissingDataError: nothing found; the message says where it looked and how to get
            the files.
    """
    name = lmdb_name(category, split)
    if not data_dir:
        looked = search_dirs()
        for root in looked:
            if os.path.isdir(os.path.join(root, name)):
                return os.path.join(root, name)
        raise MissingDataError(
            f"no LSUN {category} {split} data: no {name}/ in any of {', '.join(looked)}. "
            "To provide it: " + how_to_get(category, split))
    path = os.path.normpath(os.path.expanduser(data_dir))
    if os.path.basename(path) == "data.mdb" and os.path.isfile(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise MissingDataError(f"--data_dir={data_dir!r} is not a directory (an LMDB "
                               f"directory or a folder holding {name}/). To provide it: "
                               + how_to_get(category, split))
    if _has_data(path):
        if split == "train" or os.path.basename(path) == name:
            return path
        sibling = os.path.join(os.path.dirname(path), name)
        if os.path.isdir(sibling):
            return sibling
        raise MissingDataError(f"no LSUN {split} split next to {path}: expected {sibling}. "
                               "To provide it: " + how_to_get(category, split))
    if os.path.isdir(os.path.join(path, name)):
        return os.path.join(path, name)
    raise MissingDataError(f"--data_dir={data_dir!r} is neither an LMDB directory (it has "
                           f"no data.mdb) nor a folder holding {name}/. To provide it: "
                           + how_to_get(category, split))


_ENVS = {}  # path -> lmdb.Environment: LMDB wants one open environment per process


def open_env(path):
    """The read-only LMDB environment at `path` (opened once per process).

    Raises:
        ValueError: `path` is not an LMDB database.
    """
    path = os.path.abspath(path)
    if path not in _ENVS:
        if not _has_data(path):
            raise ValueError(f"{path} is not an LMDB database: it has no data.mdb")
        try:
            _ENVS[path] = lmdb.open(path, readonly=True, lock=False, readahead=False,
                                    meminit=False, max_readers=512)
        except lmdb.Error as e:
            raise ValueError(f"{path} is not an LMDB database "
                             f"({type(e).__name__}: {e})") from e
    return _ENVS[path]


def close_all():
    """Closes every environment `open_env` opened (sources over them stop working)."""
    while _ENVS:
        _ENVS.popitem()[1].close()


def is_complete_image(value):
    """Whether bytes (or a memoryview) look like one whole JPEG, WebP, PNG, GIF or BMP.

    Checks the magic number and the end (a JPEG's EOI marker, WebP's RIFF length, PNG's
    IEND chunk), which finds the usual damage (truncated or foreign values) without
    decoding. Only the first and last bytes are read.
    """
    size = len(value)
    head = bytes(value[:16])
    tail = bytes(value[max(0, size - 64):])
    if head.startswith(b"\xff\xd8\xff"):
        return b"\xff\xd9" in tail
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return int.from_bytes(head[4:8], "little") + 8 <= size
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return b"IEND" in tail
    return head.startswith((b"GIF87a", b"GIF89a", b"BM")) and size > 32


def key_id(key):
    """A record id (str) for an LMDB key: the key itself if it is printable ASCII, else hex."""
    if re.fullmatch(rb"[\x21-\x7e]+", key):
        return key.decode("ascii")
    return "hex:" + key.hex()


class KeyTable:
    """The keys of the readable values, in LMDB order, packed in two arrays."""

    def __init__(self, blob, offsets):
        self.blob, self.offsets = blob, offsets

    @classmethod
    def from_keys(cls, keys):
        lengths = np.fromiter((len(k) for k in keys), np.int64, len(keys))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return cls(np.frombuffer(b"".join(keys), np.uint8), offsets)

    def __len__(self):
        return len(self.offsets) - 1

    def __getitem__(self, i):
        return self.blob[self.offsets[i]:self.offsets[i + 1]].tobytes()


def scan(env, path):
    """Keys of the complete images in `env`, and (count, first few keys) of the others."""
    entries = env.stat()["entries"]
    keys, bad = [], []
    with env.begin(buffers=True) as txn:
        for key, value in txn.cursor():
            (keys if is_complete_image(value) else bad).append(bytes(key))
            done = len(keys) + len(bad)
            if done % _PROGRESS_EVERY == 0:
                logging.info("LSUN: scanned %d of %d values of %s", done, entries, path)
    return keys, bad


def _fingerprint(path):
    stat = os.stat(os.path.join(path, "data.mdb"))
    return {"lmdb": os.path.abspath(path), "bytes": stat.st_size, "mtime": stat.st_mtime}


def keys_path(index_cache):
    return os.path.splitext(index_cache)[0] + "_keys.npz"


def load_keys(env, path, index_cache=None):
    """(KeyTable of readable keys, count of corrupt values, examples of corrupt keys),
    from the cache `index_cache` (JSON, + its _keys.npz) when it matches the database."""
    fingerprint = _fingerprint(path)
    if index_cache and files.exists(index_cache) and files.exists(keys_path(index_cache)):
        cached = files.read_json(index_cache)
        if cached.get("lsun") == fingerprint:
            with tf.io.gfile.GFile(keys_path(index_cache), "rb") as f, \
                    np.load(io.BytesIO(f.read())) as arrays:
                table = KeyTable(arrays["blob"], arrays["offsets"])
            return table, cached["corrupt"], cached["corrupt_examples"]
    keys, bad = scan(env, path)
    table = KeyTable.from_keys(keys)
    examples = [key_id(k) for k in bad[:5]]
    if index_cache:  # the keys first: the JSON (checked first) says they are complete
        files.write_npz(keys_path(index_cache), blob=table.blob, offsets=table.offsets)
        files.write_json(index_cache, {"lsun": fingerprint, "readable": len(keys),
                                       "corrupt": len(bad), "corrupt_examples": examples})
    return table, len(bad), examples


def _fetcher(env, keys):
    """indices (int64 array) -> their values (object array of bytes), read through one
    read transaction per thread (kept open: the database is read-only)."""
    local = threading.local()

    def fetch(indices):
        txn = getattr(local, "txn", None)
        if txn is None:
            txn = local.txn = env.begin()
        out = np.empty(len(indices), object)
        for j, i in enumerate(indices.tolist()):
            out[j] = txn.get(keys[i])
        return out
    return fetch


def lsun_source(data_dir=None, split="train", category=DEFAULT_CATEGORY, index_cache=None):
    """A Source over one LSUN category's LMDB (see `find_lmdb` for data_dir).

    Values that are not complete images are skipped and counted (`Source.skipped`).

    Raises:
        MissingDataError: no LMDB found, or it holds no (readable) image.
        ValueError: a bad category, or the path is not an LMDB database.
    """
    if not re.fullmatch(r"[a-z][a-z0-9_]*", category or ""):
        raise ValueError(f"lsun_category must be a category name such as "
                         f"{', '.join(SCENE_CATEGORIES)}; got {category!r}")
    path = find_lmdb(data_dir, split, category)
    env = open_env(path)
    if env.stat()["entries"] == 0:
        raise MissingDataError(f"the LMDB {path} is empty (no entries). To provide the data: "
                               + how_to_get(category, split))
    keys, corrupt, examples = load_keys(env, path, index_cache)
    if corrupt:
        logging.warning("Skipped %d values of %d in %s that are not complete JPEG/WebP/PNG "
                        "images, e.g. keys %s", corrupt, corrupt + len(keys), path, examples)
    if not len(keys):
        raise MissingDataError(f"none of the {corrupt} values in {path} is a complete "
                               "JPEG/WebP/PNG image")

    fetch = _fetcher(env, keys)
    values = lambda indices: tf.ensure_shape(  # noqa: E731
        tf.numpy_function(fetch, [indices], tf.string, stateful=False), indices.shape)

    n = len(keys)
    record_at = lambda i: (i, tf.constant(-1, tf.int64))  # noqa: E731
    return Source(
        name="lsun", split=split, num_examples=n, records=indexed_records(record_at, n),
        load=lambda value: preprocessing.decode(value, 3),
        load_at_least=lambda value, side: preprocessing.decode(value, 3, side),
        skipped=corrupt, record_at=record_at, fetch=values,
        ids=lambda: [key_id(keys[i]) for i in range(n)])
