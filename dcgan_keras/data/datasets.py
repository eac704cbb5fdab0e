"""Image datasets for DCGAN training and evaluation.

Every dataset is a `Source`: a deterministic stream of light records (an index, a file
path or the encoded bytes of an image) plus a `load` op that turns one record into a
uint8 image. Training orders and skips records *before* decoding: the data position of a
run is one integer (examples consumed) = (epoch, offset in the epoch), each epoch's order
is a pure function of (seed, epoch) (see `order`), and resuming costs no decoding and no
reading of finished epochs.
"""
import dataclasses
import os
from typing import Callable, Optional

import numpy as np
import tensorflow as tf
from absl import logging

from dcgan_keras.utils import files as files_lib
from dcgan_keras.data import errors, exclusion, idx, lsun, order, preprocessing

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
# name -> (tensorflow-datasets name, name of its test split, label feature or None)
# (LSUN is read from its LMDB files: tfds' lsun builder needs tensorflow-io, which has no
# build for our TensorFlow; see `lsun`.)
TFDS_DATASETS = {
    "celeb_a": ("celeb_a", "test", None),
    "imagenet32": ("imagenet_resized/32x32", "validation", "label"),
    "imagenet64": ("imagenet_resized/64x64", "validation", "label"),
    "cifar10": ("cifar10", "test", "label"),
    "svhn": ("svhn_cropped", "test", "label"),
    "mnist": ("mnist", "test", "label"),
    "fashion_mnist": ("fashion_mnist", "test", "label"),
}
IDX_DATASETS = ("mnist", "fashion_mnist")
DATASET_NAMES = ("lsun",) + tuple(TFDS_DATASETS) + ("folder", "shapes")
SPLITS = ("train", "test")
MAX_BYTES_SHUFFLE_BUFFER = 10_000  # encoded images held for shuffling tfds streams
FETCH_BATCH = 64  # records per `Source.fetch` call


MissingDataError = errors.MissingDataError  # data not on this machine and not fetchable


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
            fetch FETCH_BATCH records at a time, after ordering and skipping.
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


def _missing(name, split, data_dir, reason):
    ways = []
    if name in IDX_DATASETS:
        ways.append(f"put the IDX files ({', '.join(idx.IDX_FILES[split])}, optionally .gz) "
                    f"in one of: {', '.join(idx.candidate_dirs(name, data_dir))}")
        if name == "fashion_mnist":
            ways.append("on Debian/Ubuntu: apt-get install dataset-fashion-mnist")
    if name in TFDS_DATASETS:
        ways.append(f"prepare it with tensorflow-datasets on a machine with internet "
                    f"(`tfds build {TFDS_DATASETS[name][0]}` or run once with downloads "
                    f"allowed) and pass --data_dir=<its tensorflow_datasets dir>")
    ways.append("or train on any image folder: --dataset=folder --data_dir=DIR")
    return MissingDataError(f"no data for dataset {name!r} split {split!r} ({reason}). "
                            "Ways to provide it: " + "; ".join(ways))


def idx_source(name, split, data_dir=None, allow_download=True):
    """MNIST / Fashion-MNIST from local IDX files; downloads (Keras) only if none exist."""
    arrays = idx.load_idx_split(name, split, data_dir)
    if arrays is None and allow_download:
        try:
            import keras  # noqa: PLC0415 (only on the download path)
            loader = getattr(keras.datasets, name)
            (x_train, y_train), (x_test, y_test) = loader.load_data()
            x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
            arrays = (x[..., None].astype(np.uint8), y.astype(np.int64))
        except Exception as e:  # offline: name every way to provide the files
            raise _missing(name, split, data_dir, f"no local IDX files and the download "
                           f"failed: {type(e).__name__}: {e}") from e
    if arrays is None:
        raise _missing(name, split, data_dir, "no local IDX files, downloads disabled")
    return array_source(name, split, *arrays)


def tfds_source(name, split, data_dir=None, allow_download=True):
    """A tensorflow-datasets dataset as encoded-image records (decoded after shuffling)."""
    import tensorflow_datasets as tfds  # heavy; only when used
    tfds_name, test_split, label_key = TFDS_DATASETS[name]
    tfds_split = "train" if split == "train" else test_split
    try:
        ds, info = tfds.load(tfds_name, split=tfds_split, data_dir=data_dir, with_info=True,
                             shuffle_files=False, download=allow_download,
                             decoders={"image": tfds.decode.SkipDecoding()})
    except Exception as e:  # DatasetNotFoundError, download errors, ...
        raise _missing(name, split, data_dir, f"tensorflow-datasets: {type(e).__name__}: "
                       f"{str(e).splitlines()[0] if str(e) else ''}") from e
    split_info = info.splits[tfds_split] if tfds_split in info.splits else None
    num_examples = split_info.num_examples if split_info else int(ds.reduce(0, lambda c, _: c + 1))
    num_classes = info.features[label_key].num_classes if label_key else None

    def records():
        return ds.map(lambda ex: (ex["image"],
                                  tf.cast(ex[label_key], tf.int64) if label_key
                                  else tf.constant(-1, tf.int64)))

    return Source(name=name, split=split, num_examples=num_examples, records=records,
                  load=lambda encoded: preprocessing.decode(encoded, 3),
                  load_at_least=lambda encoded, side: preprocessing.decode(encoded, 3, side),
                  num_classes=num_classes, max_shuffle_buffer=MAX_BYTES_SHUFFLE_BUFFER)


def list_image_files(data_dir):
    """Sorted image files under data_dir, and the label of each (its top-level subfolder)."""
    if not data_dir or not os.path.isdir(data_dir):
        raise _missing("folder", "train", data_dir,
                       f"--data_dir={data_dir!r} is not a directory of images")
    paths = []
    for root, dirs, files in os.walk(data_dir, followlinks=True):
        dirs.sort()
        paths.extend(os.path.join(root, f) for f in sorted(files)
                     if f.lower().endswith(IMAGE_EXTENSIONS))
    if not paths:
        raise _missing("folder", "train", data_dir,
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
        raise _missing("folder", split, data_dir, f"none of the {len(paths)} files decode")
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


def get_source(name, split="train", data_dir=None, allow_download=True, index_cache=None,
               lsun_category=lsun.DEFAULT_CATEGORY, exclude_list=None):
    """Returns the Source of dataset `name` (one of DATASET_NAMES) and split.

    mnist and fashion_mnist read local IDX files first (see `idx`) and only then try
    tensorflow-datasets / Keras downloads; lsun reads LMDB files (see `lsun`).

    Args:
        lsun_category: the LSUN scene category (dataset lsun).
        exclude_list: optional path of a text file of record ids (one a line, e.g. from
            python -m dcgan_keras.binaries.dedup); those records are left out.
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if data_dir:  # "--data_dir=~/x": the shell leaves a ~ after "=" as it is
        data_dir = os.path.expanduser(data_dir)
    if name == "folder":
        source = folder_source(data_dir, split, index_cache)
    elif name == "lsun":
        source = lsun.lsun_source(data_dir, split, lsun_category, index_cache)
    elif name == "shapes":  # procedural scenes with exact masks (data/shapes.py)
        from dcgan_keras.data import shapes  # noqa: PLC0415 (it imports this module)
        source = shapes.source(split)
    elif name in IDX_DATASETS:
        source = idx_source(name, split, data_dir, allow_download)
    else:
        source = tfds_source(name, split, data_dir, allow_download)
    if exclude_list:
        source = exclusion.exclude(source, exclusion.read_list(exclude_list), exclude_list)
    return source


def fetched(ds, source):
    """(record, label) -> (what `source.load` takes, label): the records' values fetched
    FETCH_BATCH at a time when the source has `fetch`, else the records unchanged."""
    if source.fetch is None:
        return ds
    ds = ds.batch(FETCH_BATCH).map(lambda r, l: (source.fetch(r), l),
                                   num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.unbatch()


def _decode_and_preprocess(source, image_size, channels, mode, with_label=True):
    def fn(record, label):
        if mode == "crop_resize" and source.load_at_least:
            image = source.load_at_least(record, image_size)
        else:
            image = source.load(record)
        image = preprocessing.preprocess(image, image_size, channels, mode)
        return (image, label) if with_label else image
    return fn


def train_dataset(source, image_size, channels, global_batch_size, seed=0, start_example=0,
                  num_shards=1, shard_index=0, per_replica_batch_size=None,
                  preprocess_mode="crop_resize", shuffle_buffer=None):
    """An endless, shuffled stream of this input pipeline's share of every global batch.

    Records are put in each epoch's order (a pure function of (seed, epoch)), started at
    `start_example` and split between input pipelines (workers) before any decoding, so
    every worker walks the same global order and a resumed run sees exactly the batches
    it would have seen. Resuming reads nothing of the finished epochs: a source with
    `record_at` starts at its position at once, a streaming one (tfds) reads at most the
    records of the current epoch before it (see `order.record_stream`). Each worker's share
    is cut into per-replica batches: its local replicas take consecutive ones.

    Args:
        source: a Source.
        image_size, channels, preprocess_mode: see `preprocessing.preprocess`.
        global_batch_size: examples per step over all replicas.
        seed: shuffle seed.
        start_example: examples already consumed (the data position of a resumed run):
            epoch start_example // num_examples, offset start_example % num_examples.
        num_shards, shard_index: input pipelines and this one's index (one per worker).
        per_replica_batch_size: batch of each element (default: the shard's share).
        shuffle_buffer: records shuffled together by a streaming source (default: the
            whole split, capped by `source.max_shuffle_buffer`).
    Returns:
        tf.data.Dataset of float32 [per_replica_batch_size, S, S, channels] in [-1, 1].
    """
    if global_batch_size % num_shards:
        raise ValueError(f"batch_size {global_batch_size} must be divisible by the number "
                         f"of workers {num_shards}")
    if source.num_examples < global_batch_size:
        raise ValueError(f"dataset {source.name!r} has {source.num_examples} examples, fewer "
                         f"than one batch of {global_batch_size}; lower --batch_size")
    per_shard = global_batch_size // num_shards
    per_replica_batch_size = per_replica_batch_size or per_shard
    buffer = shuffle_buffer or source.num_examples
    if source.max_shuffle_buffer:
        buffer = min(buffer, source.max_shuffle_buffer)
    ds = order.record_stream(source, seed, start_example, buffer)
    if num_shards > 1:
        lo = shard_index * per_shard
        ds = ds.batch(global_batch_size, drop_remainder=True)
        ds = ds.map(lambda r, l: (r[lo:lo + per_shard], l[lo:lo + per_shard])).unbatch()
    ds = fetched(ds, source)
    ds = ds.map(_decode_and_preprocess(source, image_size, channels, preprocess_mode,
                                       with_label=False),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(per_replica_batch_size, drop_remainder=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def eval_dataset(source, image_size, channels, batch_size, preprocess_mode="crop_resize",
                 max_examples=None):
    """The split in its fixed order, once, as (images, labels) batches."""
    ds = source.records()
    if max_examples:
        ds = ds.take(max_examples)
    ds = fetched(ds, source).map(_decode_and_preprocess(source, image_size, channels,
                                                        preprocess_mode),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def load_numpy(source, image_size, channels, preprocess_mode="crop_resize", max_examples=None,
               batch_size=1000):
    """The split as NumPy arrays: float32 images [N, S, S, C] in [-1, 1], int64 labels [N]."""
    images, labels = [], []
    for x, y in eval_dataset(source, image_size, channels, batch_size, preprocess_mode,
                             max_examples).as_numpy_iterator():
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


def _physical_memory_bytes():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _decoded_bytes(source, image_size, channels):
    """Memory of the whole split as uint8 [image_size, image_size, channels] images."""
    return source.num_examples * image_size * image_size * channels


def cached_source(source, image_size, channels, preprocess_mode="crop_resize",
                  max_bytes=None):
    """Decodes and preprocesses a whole split once; returns a Source over it in memory.

    For folders (and tfds splits) of images much larger than `image_size`, decoding every
    epoch can cost more CPU than the training step (a 128x128 PNG ~500 us, against ~0.8 ms
    per image for a whole 32x32 bfloat16 step on 2 cores). The cache keeps the final
    [image_size, image_size, channels] pixels as uint8 (rounded to the nearest of 256
    levels: at most 1/255 from the float pipeline), in the same record order, so shuffling,
    sharding and exact resume work as before. Refuses, with the size, a split that would
    take more than `max_bytes` (default: half the machine's memory).
    """
    need = _decoded_bytes(source, image_size, channels)
    limit = max_bytes if max_bytes is not None else (_physical_memory_bytes() or 0) // 2
    if limit and need > limit:
        raise ValueError(
            f"--cache_images needs {need / 2**30:.2f} GiB for {source.num_examples} "
            f"{image_size}x{image_size}x{channels} images, more than the "
            f"{limit / 2**30:.2f} GiB allowed (half the memory); train without "
            "--cache_images, or on a smaller --image_size or subset")
    images, labels = load_numpy(source, image_size, channels, preprocess_mode)
    images = np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)
    cached = array_source(source.name, source.split, images,
                          labels if source.num_classes else None)
    cached.skipped = source.skipped
    return cached


AUTO_CACHE_MAX_BYTES = 1 << 30


def should_cache(source, image_size, channels, mode="auto"):
    """Whether to decode `source` once into memory (`--cache_images`).

    "true"/"false" decide; "auto" caches sources of encoded files (folders, tfds: those with
    a scaled decoder) whose decoded split fits in AUTO_CACHE_MAX_BYTES and 1/8 of the RAM;
    in-memory sources (IDX, arrays) gain nothing from it."""
    if mode in ("true", "false"):
        return mode == "true"
    if mode != "auto":
        raise ValueError(f"cache_images must be true, false or auto, got {mode!r}")
    need = _decoded_bytes(source, image_size, channels)
    memory = _physical_memory_bytes()
    return (source.load_at_least is not None and need <= AUTO_CACHE_MAX_BYTES
            and (memory is None or need <= memory // 8))
