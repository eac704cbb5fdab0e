"""Data: IDX files, folders (with corrupt files), tfds, preprocessing, the train stream."""
import dataclasses
import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from testutil import write_idx
from dcgan_keras.data import (cache, datasets, errors, idx, pipeline, preprocessing,
                              source as source_lib)


def test_read_idx_round_trip(tmp_path):
    a = np.random.default_rng(0).integers(0, 255, (5, 7, 3)).astype(np.uint8)
    write_idx(str(tmp_path / "x-idx3-ubyte.gz"), a)
    np.testing.assert_array_equal(idx.read_idx(str(tmp_path / "x-idx3-ubyte.gz")), a)
    (tmp_path / "bad").write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x05")
    with pytest.raises(ValueError, match="truncated"):
        idx.read_idx(str(tmp_path / "bad"))
    (tmp_path / "junk").write_bytes(b"GIF89a....")
    with pytest.raises(ValueError, match="not an IDX file"):
        idx.read_idx(str(tmp_path / "junk"))


def test_idx_source_reads_data_dir(idx_dir):
    source = datasets.get_source("fashion_mnist", "train", idx_dir, allow_download=False)
    assert source.num_examples == 64 and source.num_classes == 10
    images, labels = pipeline.load_numpy(source, 32, 1)
    assert images.shape == (64, 32, 32, 1) and images.dtype == np.float32
    assert images.min() >= -1 and images.max() <= 1 and labels.shape == (64,)
    test = datasets.get_source("fashion_mnist", "test", idx_dir, allow_download=False)
    assert test.num_examples == 32


def test_missing_data_names_every_way_to_provide_it(tmp_path, monkeypatch):
    monkeypatch.setattr(idx, "SEARCH_ROOTS", (str(tmp_path / "nothing"),))
    with pytest.raises(errors.MissingDataError) as e:
        datasets.get_source("fashion_mnist", "train", str(tmp_path / "empty"),
                            allow_download=False)
    message = str(e.value)
    assert "train-images-idx3-ubyte" in message and "apt-get install dataset-fashion-mnist" in message
    assert "--data_dir" in message and "tfds build" in message
    with pytest.raises(errors.MissingDataError, match="not a directory"):
        datasets.get_source("folder", "train", str(tmp_path / "nope"))


def test_tfds_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(errors.MissingDataError, match="tfds build cifar10"):
        datasets.get_source("cifar10", "train", str(tmp_path), allow_download=False)


def test_tfds_source_with_mock_data():
    import tensorflow_datasets as tfds
    with tfds.testing.mock_data(num_examples=20):
        source = datasets.get_source("cifar10", "train", allow_download=False)
        assert source.num_examples == 20 and source.num_classes == 10
        batch = next(iter(pipeline.train_dataset(source, 16, 3, 8, seed=0)))
        assert batch.shape == (8, 16, 16, 3) and batch.dtype == tf.float32
        assert -1 <= float(tf.reduce_min(batch)) and float(tf.reduce_max(batch)) <= 1
        svhn = datasets.get_source("svhn", "test", allow_download=False)
        images, labels = pipeline.load_numpy(svhn, 32, 1)
        assert images.shape == (20, 32, 32, 1) and labels.min() >= 0


def _encode(array, fmt):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def test_folder_skips_and_counts_corrupt_files(tmp_path):
    rng = np.random.default_rng(0)
    rgb = lambda h, w: rng.integers(0, 255, (h, w, 3)).astype(np.uint8)
    (tmp_path / "cats").mkdir()
    (tmp_path / "dogs").mkdir()
    (tmp_path / "cats/a.png").write_bytes(_encode(rgb(20, 30), "PNG"))
    (tmp_path / "cats/b.jpg").write_bytes(_encode(rgb(40, 20), "JPEG"))
    (tmp_path / "dogs/c.webp").write_bytes(_encode(rgb(24, 24), "WEBP"))
    (tmp_path / "dogs/d.bmp").write_bytes(_encode(rgb(16, 16), "BMP"))
    gray = rng.integers(0, 255, (18, 18)).astype(np.uint8)
    (tmp_path / "dogs/e.png").write_bytes(_encode(gray, "PNG"))
    (tmp_path / "dogs/bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (tmp_path / "dogs/cut.png").write_bytes(_encode(rgb(20, 20), "PNG")[:60])
    (tmp_path / "notes.txt").write_text("ignored")
    source = datasets.get_source("folder", "train", str(tmp_path),
                                 index_cache=str(tmp_path / "index.json"))
    assert source.num_examples == 5 and source.skipped == 2 and source.num_classes == 2
    images, labels = pipeline.load_numpy(source, 16, 3)
    assert images.shape == (5, 16, 16, 3)
    assert sorted(labels.tolist()) == [0, 0, 1, 1, 1]
    batches = list(pipeline.train_dataset(source, 16, 1, 4, seed=0).take(3))
    assert all(b.shape == (4, 16, 16, 1) for b in batches)
    # The scan result is cached: a second listing does not decode again.
    assert os.path.exists(tmp_path / "index.json")
    again = datasets.get_source("folder", "train", str(tmp_path),
                                index_cache=str(tmp_path / "index.json"))
    assert again.num_examples == 5


def test_preprocess_crops_the_centre_and_scales():
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, 10:30] = 255  # the centre square is white, the sides black
    out = preprocessing.preprocess(image, 16, 3).numpy()
    assert out.shape == (16, 16, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, 1.0, atol=1e-5)
    values = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
    np.testing.assert_allclose(preprocessing.preprocess(values, 16, 1).numpy()[..., 0],
                               values[..., 0] / 127.5 - 1, atol=1e-5)


def test_preprocess_pad_mode_and_channel_conversion():
    image = np.full((28, 28, 1), 255, np.uint8)
    out = preprocessing.preprocess(image, 32, 3, mode="pad").numpy()
    assert out.shape == (32, 32, 3)
    assert out[0, 0, 0] == -1 and out[2, 2, 0] == 1 and out[16, 16, 2] == 1
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 255  # pure red -> gray 0.2989 * 255
    gray = preprocessing.preprocess(rgb, 16, 1).numpy()
    np.testing.assert_allclose(gray, round(0.2989 * 255) / 127.5 - 1, atol=1e-2)
    with pytest.raises(ValueError, match="preprocess mode"):
        preprocessing.preprocess(rgb, 16, 1, mode="stretch")


def test_preprocess_is_the_same_eager_and_in_tf_data():
    images = np.random.default_rng(1).integers(0, 255, (4, 30, 22, 3)).astype(np.uint8)
    eager = np.stack([preprocessing.preprocess(x, 16, 3).numpy() for x in images])
    ds = tf.data.Dataset.from_tensor_slices(images).map(
        lambda x: preprocessing.preprocess(x, 16, 3)).batch(4)
    np.testing.assert_allclose(next(iter(ds)).numpy(), eager, atol=1e-6)


def _source(n=40):
    images = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1) * np.ones((1, 16, 16, 1), np.uint8)
    return source_lib.array_source("toy", "train", images, np.arange(n) % 4)


def _ids(batch):  # each toy image is filled with its index
    return np.rint((batch[:, 0, 0, 0] + 1) * 127.5).astype(int).tolist()


def test_train_stream_is_shuffled_deterministic_and_resumable():
    source = _source()
    stream = lambda **kw: pipeline.train_dataset(source, 16, 1, 8, seed=5, **kw)
    first = [_ids(b.numpy()) for b in stream().take(10)]  # 2 epochs
    assert first == [_ids(b.numpy()) for b in stream().take(10)]
    epoch1, epoch2 = sum(first[:5], []), sum(first[5:], [])
    assert sorted(epoch1) == list(range(40)) and sorted(epoch2) == list(range(40))
    assert epoch1 != list(range(40)) and epoch1 != epoch2  # shuffled, reshuffled
    resumed = [_ids(b.numpy()) for b in stream(start_example=3 * 8).take(7)]
    assert resumed == first[3:10]


def test_train_stream_shards_split_each_global_batch():
    source = _source()
    whole = [_ids(b.numpy()) for b in pipeline.train_dataset(source, 16, 1, 8, seed=2).take(4)]
    parts = [[_ids(b.numpy()) for b in pipeline.train_dataset(
        source, 16, 1, 8, seed=2, num_shards=2, shard_index=i).take(4)] for i in (0, 1)]
    assert [a + b for a, b in zip(*parts)] == whole
    with pytest.raises(ValueError, match="divisible"):
        pipeline.train_dataset(source, 16, 1, 9, num_shards=2)
    with pytest.raises(ValueError, match="fewer than one batch"):
        pipeline.train_dataset(source, 16, 1, 64)


def _smooth_rgb(height, width, seed=0):
    """A smooth random image (like a photo, unlike white noise) with mild noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (1, 6, 6, 3)).astype(np.float32)
    image = tf.image.resize(coarse, [height, width], method="bicubic")[0].numpy()
    return np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("shape,size,decoded", [
    ((128, 128), 32, (32, 32)),    # ratio 4: decoded at the target, the resize is skipped
    ((96, 160), 16, (24, 40)),     # ratio 4 on a landscape image (8 would give 12 < 16)
    ((200, 120), 32, (100, 60)),   # ratio 2: 120 // 4 = 30 < 32
])
def test_scaled_jpeg_decode_stays_close_to_the_full_decode(shape, size, decoded):
    encoded = tf.constant(_encode(_smooth_rgb(*shape), "JPEG"))
    scaled = preprocessing.decode(encoded, 3, min_side=size)
    assert tuple(scaled.shape[:2]) == decoded
    full = preprocessing.preprocess(preprocessing.decode(encoded, 3), size, 3).numpy()
    fast = preprocessing.preprocess(scaled, size, 3).numpy()
    # DCT-domain scaling is a sharper low-pass than the antialiased bilinear kernel:
    # on smooth images they differ by < 0.03 on average in [-1, 1] units (~4/255).
    assert np.abs(fast - full).mean() < 0.03


def test_scaled_decode_leaves_small_jpegs_and_other_formats_alone():
    rgb = _smooth_rgb(40, 48)
    small_jpeg = tf.constant(_encode(rgb, "JPEG"))  # 40 // 2 < 32: no downscaling
    np.testing.assert_array_equal(preprocessing.decode(small_jpeg, 3, min_side=32),
                                  preprocessing.decode(small_jpeg, 3))
    gray = rgb[..., 0]
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    for array, fmt in ((rgb, "PNG"), (gray, "PNG"), (rgba, "PNG"), (gray, "JPEG")):
        encoded = tf.constant(_encode(array, fmt))
        for channels in (1, 3):
            scaled = preprocessing.decode(encoded, channels, min_side=8)
            assert scaled.shape[-1] == channels and scaled.dtype == tf.uint8
            if fmt == "PNG":  # lossless: exactly the full decode
                np.testing.assert_array_equal(scaled, preprocessing.decode(encoded, channels))
    assert preprocessing.decode(tf.constant(_encode(gray, "JPEG")), 3, min_side=8).shape == (10, 12, 3)


def test_folder_stream_uses_the_scaled_decode_and_matches_the_full_one(tmp_path):
    for i in range(8):
        fmt = "JPEG" if i % 2 else "PNG"
        (tmp_path / f"{i}.{fmt.lower()}").write_bytes(_encode(_smooth_rgb(64, 80, i), fmt))
    source = datasets.get_source("folder", "train", str(tmp_path))
    images, _ = pipeline.load_numpy(source, 16, 3)
    full = np.stack([preprocessing.preprocess(source.load(p), 16, 3).numpy()
                     for p in sorted(str(p) for p in tmp_path.iterdir())])
    diff = np.abs(images - full).mean(axis=(1, 2, 3))
    assert diff[0::2].max() == 0  # PNGs: the same pixels
    assert 0 < diff[1::2].max() < 0.03  # JPEGs: decoded at 1/4 scale, close
    batch = next(iter(pipeline.train_dataset(source, 16, 3, 8, seed=0)))
    assert batch.shape == (8, 16, 16, 3) and -1 <= batch.numpy().min() <= batch.numpy().max() <= 1


def test_cached_source_keeps_the_pixels_order_and_labels(tmp_path):
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
    for i in range(6):
        fmt = "JPEG" if i % 2 else "PNG"
        path = tmp_path / ("a" if i < 3 else "b") / f"{i}.{fmt.lower()}"
        path.write_bytes(_encode(_smooth_rgb(40, 56, i), fmt))
    source = datasets.get_source("folder", "train", str(tmp_path))
    cached = cache.cached_source(source, 16, 3)
    assert cached.num_examples == source.num_examples == 6
    images, labels = pipeline.load_numpy(source, 16, 3)
    again, again_labels = pipeline.load_numpy(cached, 16, 3)
    np.testing.assert_array_equal(again_labels, labels)
    assert np.abs(again - images).max() <= 1.0 / 127.5 + 1e-6  # uint8 rounding only
    # The training stream is the same permutation of the same images.
    ref = next(iter(pipeline.train_dataset(source, 16, 3, 6, seed=3))).numpy()
    got = next(iter(pipeline.train_dataset(cached, 16, 3, 6, seed=3))).numpy()
    assert np.abs(got - ref).max() <= 1.0 / 127.5 + 1e-6
    with pytest.raises(ValueError, match="--cache_images needs .* GiB"):
        cache.cached_source(source, 16, 3, max_bytes=1000)


def test_should_cache_auto_picks_small_encoded_splits_only(tmp_path):
    (tmp_path / "x.png").write_bytes(_encode(_smooth_rgb(40, 40), "PNG"))
    (tmp_path / "y.png").write_bytes(_encode(_smooth_rgb(40, 40, 1), "PNG"))
    folder = datasets.get_source("folder", "train", str(tmp_path))
    in_memory = _source()
    assert cache.should_cache(folder, 32, 3, "auto")
    assert not cache.should_cache(in_memory, 32, 3, "auto")  # nothing to decode
    assert cache.should_cache(in_memory, 32, 3, "true")
    assert not cache.should_cache(folder, 32, 3, "false")
    huge = dataclasses.replace(folder, num_examples=3_000_000)  # LSUN-sized at 64x64
    assert not cache.should_cache(huge, 64, 3, "auto")
    with pytest.raises(ValueError, match="true, false or auto"):
        cache.should_cache(folder, 32, 3, "yes")
