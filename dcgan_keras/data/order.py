"""The order of training records: epoch after epoch, each a pure function of (seed, epoch).

The data position of a run is one integer, the examples it has consumed, read as
(epoch, offset) = divmod(examples, num_examples). Batches run on across epoch ends (the
stream is continuous), so the position of step k is always k * batch.

Two kinds of sources:

- With random access (`Source.record_at`: arrays, folders, LMDB): epoch e visits
  record_at(index_shuffle(i, [seed, e], n - 1)) for i = 0 .. n - 1, a pseudorandom
  permutation of the whole split computed element by element (no table in memory). A
  resumed run starts at (epoch, offset) directly and reads no earlier record: O(1).
- Streaming (tensorflow-datasets): records come in their fixed order, are cut into
  windows of `window` records, and each window is permuted with a seed folded from
  (seed, epoch, window index). Resuming skips whole windows, then records, before any
  decoding: it reads and drops at most the records of the current epoch before the
  offset, never a finished epoch. (tfds prepared the split in a shuffled order already;
  the windows vary it from epoch to epoch, like a shuffle buffer of the same size.)
"""
import tensorflow as tf

_MAX_EPOCHS = 1 << 40  # "forever"; Dataset.range needs an end


def position(start_example, num_examples):
    """(epoch, offset in the epoch) of `start_example` examples consumed."""
    if num_examples < 1:
        raise ValueError(f"num_examples must be >= 1, got {num_examples}")
    return divmod(int(start_example), int(num_examples))


def _seed(seed, epoch):
    return tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)])


def indexed_epoch(source, seed, epoch, offset=0):
    """Records of one epoch of a random-access source, from position `offset`."""
    n = source.num_examples
    pair = _seed(seed, epoch)
    last = tf.constant(n - 1, tf.int64)
    return tf.data.Dataset.range(offset, n).map(
        lambda i: source.record_at(tf.random.experimental.index_shuffle(i, pair, last)))


def streamed_epoch(source, seed, epoch, offset=0, window=10_000):
    """Records of one epoch of a streaming source (window-permuted), from `offset`."""
    first = offset // window if isinstance(offset, int) else 0
    pair = _seed(seed, epoch)

    def permute(w, batch):
        size = tf.shape(tf.nest.flatten(batch)[0])[0]
        perm = tf.random.experimental.stateless_shuffle(
            tf.range(size), tf.random.experimental.stateless_fold_in(pair, w))
        return tf.nest.map_structure(lambda t: tf.gather(t, perm), batch)

    ds = source.records()
    if first:
        ds = ds.skip(first * window)  # whole windows: not batched, not permuted
    ds = ds.batch(window).enumerate(start=first).map(permute).unbatch()
    return ds.skip(offset - first * window) if offset else ds


def record_stream(source, seed, start_example=0, window=10_000):
    """The endless stream of (record, label) from data position `start_example`.

    Args:
        source: a source.Source.
        seed: the run's seed; with the epoch it fixes each epoch's order.
        start_example: examples already consumed.
        window: records permuted together by a streaming source.
    Returns:
        tf.data.Dataset of (record, label), epoch after epoch without end.
    """
    epoch, offset = position(start_example, source.num_examples)
    if source.record_at is not None:
        one_epoch = lambda e, start=0: indexed_epoch(source, seed, e, start)  # noqa: E731
    else:
        one_epoch = lambda e, start=0: streamed_epoch(source, seed, e, start, window)  # noqa: E731
    rest = tf.data.Dataset.range(epoch + 1, _MAX_EPOCHS).flat_map(one_epoch)
    return one_epoch(epoch, offset).concatenate(rest)
