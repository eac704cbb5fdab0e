"""The tf.data pipeline over a `Source`: ordered, sharded, decoded, preprocessed, batched.

Training orders and skips records *before* decoding: the data position of a run is one
integer (examples consumed) = (epoch, offset in the epoch), each epoch's order is a pure
function of (seed, epoch) (see `order`), and resuming costs no decoding and no reading of
finished epochs. Every function takes the image format as (image_size, channels,
preprocess mode), see `preprocessing.preprocess`.
"""
import numpy as np
import tensorflow as tf

from dcgan_keras.data import order, preprocessing

FETCH_BATCH = 64  # records per `Source.fetch` call


def fetched(ds, source):
    """(record, label) -> (what `source.load` takes, label): the records' values fetched
    FETCH_BATCH at a time when the source has `fetch`, else the records unchanged."""
    if source.fetch is None:
        return ds
    ds = ds.batch(FETCH_BATCH).map(lambda r, l: (source.fetch(r), l),
                                   num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.unbatch()


def decoded(ds, source, image_size, channels, mode, with_label=True):
    """(record, label) -> preprocessed float32 images [S, S, C] in [-1, 1] (with labels),
    in the same order: fetched, decoded (at reduced scale where the crop-and-resize allows
    it) and preprocessed in parallel."""
    def decode(record, label):
        if mode == "crop_resize" and source.load_at_least:
            image = source.load_at_least(record, image_size)
        else:
            image = source.load(record)
        image = preprocessing.preprocess(image, image_size, channels, mode)
        return (image, label) if with_label else image
    return fetched(ds, source).map(decode, num_parallel_calls=tf.data.AUTOTUNE,
                                   deterministic=True)


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
    ds = decoded(ds, source, image_size, channels, preprocess_mode, with_label=False)
    ds = ds.batch(per_replica_batch_size, drop_remainder=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def eval_dataset(source, image_size, channels, batch_size, preprocess_mode="crop_resize",
                 max_examples=None):
    """The split in its fixed order, once, as (images, labels) batches."""
    ds = source.records()
    if max_examples:
        ds = ds.take(max_examples)
    ds = decoded(ds, source, image_size, channels, preprocess_mode)
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
