"""The data position (epoch, offset): each epoch's order a pure function of (seed, epoch),
and a resume after more than one epoch that reads nothing of the finished epochs."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from dcgan_keras.data import order, pipeline, source as source_lib


def _source(n):
    """n one-pixel images, image i filled with value i (i < 256), label i % 4."""
    images = (np.arange(n) % 256).astype(np.uint8).reshape(n, 1, 1, 1) * np.ones(
        (1, 16, 16, 1), np.uint8)
    return source_lib.array_source("toy", "train", images, np.arange(n) % 4)


def _streaming(source):
    """The same records without random access: they stream like a tfds split."""
    return dataclasses.replace(source, record_at=None)


def _ids(batch):
    return np.rint((batch[:, 0, 0, 0] + 1) * 127.5).astype(int).tolist()


def _records(ds, count):
    return [int(r) for r, _ in ds.take(count).as_numpy_iterator()]


def test_position_is_epoch_and_offset():
    assert order.position(0, 40) == (0, 0)
    assert order.position(93, 40) == (2, 13)
    with pytest.raises(ValueError, match="num_examples must be >= 1"):
        order.position(3, 0)


@pytest.mark.parametrize("streaming", [False, True])
def test_each_epoch_is_a_permutation_fixed_by_seed_and_epoch(streaming):
    source = _streaming(_source(50)) if streaming else _source(50)
    epoch = order.streamed_epoch if streaming else order.indexed_epoch
    kw = {"window": 20} if streaming else {}
    e3 = _records(epoch(source, 7, 3, **kw), 100)
    assert sorted(e3) == list(range(50)) and e3 != list(range(50))
    tf.random.set_seed(12345)  # the global seed plays no part
    assert _records(epoch(source, 7, 3, **kw), 100) == e3
    assert _records(epoch(source, 7, 4, **kw), 100) != e3
    assert _records(epoch(source, 8, 3, **kw), 100) != e3
    # The stream is epoch after epoch of exactly these orders.
    stream = _records(order.record_stream(source, 7, 0, window=20), 250)
    assert stream[150:200] == e3
    if streaming:  # a window keeps its records: 20 records permuted among themselves
        assert sorted(e3[:20]) == list(range(20))


@pytest.mark.parametrize("streaming", [False, True])
def test_resume_after_more_than_one_epoch_gives_the_unbroken_batches(streaming):
    source = _streaming(_source(40)) if streaming else _source(40)
    kw = dict(seed=3, shuffle_buffer=16)
    unbroken = [_ids(b) for b in pipeline.train_dataset(source, 16, 1, 8, **kw)
                .take(16).as_numpy_iterator()]  # 3.2 epochs
    for step in (5, 7, 11, 13):  # epoch 1 offset 0, epoch 1 offset 16, epoch 2 offset 8, ..
        resumed = [_ids(b) for b in pipeline.train_dataset(
            source, 16, 1, 8, start_example=8 * step, **kw).take(16 - step).as_numpy_iterator()]
        assert resumed == unbroken[step:], step
    # Two workers resumed after two epochs split the unbroken global batches.
    parts = [[_ids(b) for b in pipeline.train_dataset(
        source, 16, 1, 8, start_example=8 * 11, num_shards=2, shard_index=i, **kw)
        .take(5).as_numpy_iterator()] for i in (0, 1)]
    assert [a + b for a, b in zip(*parts)] == unbroken[11:16]


class _Counter:
    def __init__(self):
        self.count = 0

    def __call__(self, x):
        self.count += 1
        return x


def _counting(source, counter):
    """source whose records() counts every record it reads (through a py_function)."""
    def records():
        return source.records().map(
            lambda r, l: (tf.ensure_shape(tf.py_function(counter, [r], r.dtype), []), l))
    return dataclasses.replace(source, records=records)


def test_a_streaming_resume_reads_at_most_its_own_epoch():
    n, counter = 200, _Counter()
    source = _counting(_streaming(_source(n)), counter)
    batch = next(iter(pipeline.train_dataset(source, 16, 1, 8, seed=1,
                                             start_example=5 * n + 120, shuffle_buffer=20)))
    # The old repeat().skip() read 5 epochs + 120 records first (1120); now whole windows
    # before the offset are skipped unread by the permutation, and what was read is the
    # rest of epoch 5 (80) plus what the prefetching threads have read ahead by the time
    # the batch arrives: under a loaded machine (make test's parallel workers) that
    # reached the next epoch (200 once), never the 1000 records the skip would read first.
    assert counter.count < 5 * n, counter.count
    expected = _records(order.streamed_epoch(_streaming(_source(n)), 1, 5, 120, 20), 8)
    assert _ids(batch.numpy()) == expected


def test_a_random_access_resume_starts_at_its_position_at_once():
    source = _source(40)
    calls = _Counter()
    record_at = source.record_at
    source = dataclasses.replace(
        source, record_at=lambda i: record_at(
            tf.ensure_shape(tf.py_function(calls, [i], tf.int64), [])))
    far = 10**9 * 40 + 8  # a billion epochs in
    batch = next(iter(pipeline.train_dataset(source, 16, 1, 8, seed=2, start_example=far)))
    assert calls.count < 40  # the first batch and what the pipeline prefetched
    perm = tf.random.experimental.index_shuffle(
        tf.range(8, 16, dtype=tf.int64), tf.constant([2, 10**9], tf.int64),
        tf.constant(39, tf.int64)).numpy()
    assert _ids(batch.numpy()) == perm.tolist()
