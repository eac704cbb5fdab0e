"""LSUN from LMDB files in LSUN's layout: WebP and JPEG values, key cache, bad input."""
import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from testutil import encode_image, make_lsun_lmdb, smooth_image
from dcgan_keras.data import datasets, errors, lsun, order, pipeline, preprocessing

CORRUPT = {
    "junk": b"not an image at all",
    "truncated_webp": encode_image(smooth_image(40, 52, 99), "WEBP")[:200],
    "truncated_jpeg": encode_image(smooth_image(40, 52, 98), "JPEG")[:300],
}


@pytest.fixture(autouse=True)
def _close_envs():
    yield
    lsun.close_all()


@pytest.fixture
def lmdb_root(tmp_path):
    root = tmp_path / "lsun"
    path, keys, images = make_lsun_lmdb(str(root), num=12, extra=CORRUPT)
    make_lsun_lmdb(str(root), split="val", num=5, seed=1)
    return str(root), path, keys, images


def _pillow(value):
    return np.asarray(Image.open(io.BytesIO(value)).convert("RGB"))


def _load(source, i):
    """Record i's image: its value fetched (as the pipelines do, in a batch) and decoded."""
    return source.load(source.fetch(tf.constant([i], tf.int64))[0])


def test_reads_webp_and_jpeg_values_in_key_order_and_skips_corrupt_ones(lmdb_root, tmp_path):
    root, path, keys, images = lmdb_root
    source = datasets.get_source("lsun", "train", root, index_cache=str(tmp_path / "i.json"))
    load = lambda i: _load(source, i)  # noqa: E731
    assert source.num_examples == 12 and source.skipped == 3 and source.num_classes is None
    assert source.ids() == keys  # LMDB order: sorted keys; the 3 corrupt ones left out
    with lsun.open_env(path).begin() as txn:
        for i in (0, 1, 7):  # record i is the value of key i, WebP or JPEG
            value = txn.get(keys[i].encode())
            np.testing.assert_array_equal(load(i).numpy(),
                                          preprocessing.decode(tf.constant(value), 3).numpy())
            # (Pillow's WebP/JPEG decoders round the colour conversion differently.)
            assert np.abs(load(i).numpy() - _pillow(value).astype(float)).mean() < 3
    # ... and are the planted images up to the lossy codecs.
    decoded = load(3).numpy().astype(float)
    assert np.abs(decoded - images[keys[3]]).mean() < 4
    x, labels = pipeline.load_numpy(source, 16, 3)
    assert x.shape == (12, 16, 16, 3) and (labels == -1).all()
    batches = list(pipeline.train_dataset(source, 16, 3, 4, seed=0).take(6))  # 2 epochs
    assert all(b.shape == (4, 16, 16, 3) for b in batches)


def test_batched_fetch_keeps_the_order_and_resumes_exactly(lmdb_root, tmp_path):
    """Values fetched FETCH_BATCH at a time (across an epoch end) are those of the
    records in the epoch order, one by one; a resume mid-epoch 2 gets the same batches."""
    root, path, keys, _ = lmdb_root
    source = datasets.get_source("lsun", "train", root, index_cache=str(tmp_path / "i.json"))
    records = [int(r) for r, _ in order.record_stream(source, 5).take(30)]  # 2.5 epochs
    assert sorted(records[:12]) == list(range(12)) and records[:12] != records[12:24]
    fetched = [v for v, _ in pipeline.fetched(order.record_stream(source, 5), source).take(30)]
    with lsun.open_env(path).begin() as txn:
        assert [v.numpy() for v in fetched] == [txn.get(keys[r].encode()) for r in records]
    stream = lambda start: pipeline.train_dataset(source, 8, 3, 3, seed=5,  # noqa: E731
                                                  start_example=start)
    unbroken = [b.numpy() for b in stream(0).take(10)]
    resumed = [b.numpy() for b in stream(15).take(5)]  # epoch 1, offset 3
    for a, b in zip(unbroken[5:], resumed):
        np.testing.assert_array_equal(a, b)
    with lsun.open_env(path).begin() as txn:  # as train_dataset decodes: at least 8x8
        expected = [preprocessing.preprocess(source.load_at_least(
            tf.constant(txn.get(keys[r].encode())), 8), 8, 3).numpy() for r in records[:6]]
    np.testing.assert_array_equal(np.concatenate(unbroken[:2]), np.stack(expected))


def test_key_list_is_cached_and_rescanned_when_the_database_changes(lmdb_root, tmp_path,
                                                                   monkeypatch):
    root, path, keys, _ = lmdb_root
    cache = str(tmp_path / "data_index.json")
    first = datasets.get_source("lsun", "train", root, index_cache=cache)
    assert os.path.exists(cache) and os.path.exists(lsun.keys_path(cache))
    scans = []
    real_scan = lsun.scan
    monkeypatch.setattr(lsun, "scan", lambda *a: scans.append(1) or real_scan(*a))
    again = datasets.get_source("lsun", "train", root, index_cache=cache)
    assert not scans and again.ids() == first.ids() and again.skipped == 3
    lsun.close_all()  # as in a new process, after the database grew
    import lmdb
    with lmdb.open(path, map_size=1 << 26) as env, env.begin(write=True) as txn:
        txn.put(b"zz_new", encode_image(smooth_image(30, 30, 5), "WEBP"))
    grown = datasets.get_source("lsun", "train", root, index_cache=cache)
    assert scans == [1] and grown.num_examples == 13 and grown.ids()[-1] == "zz_new"


def test_data_dir_forms_category_and_test_split(lmdb_root, tmp_path, monkeypatch):
    root, path, keys, _ = lmdb_root
    for data_dir in (root, path, os.path.join(path, "data.mdb")):
        assert datasets.get_source("lsun", "train", data_dir).ids() == keys
    # The test split is LSUN's val LMDB, found from the folder or next to the train LMDB.
    assert datasets.get_source("lsun", "test", root).num_examples == 5
    assert datasets.get_source("lsun", "test", path).num_examples == 5
    make_lsun_lmdb(str(tmp_path / "other"), category="church_outdoor", num=6, seed=2)
    church = datasets.get_source("lsun", "train", str(tmp_path / "other"),
                                 lsun_category="church_outdoor")
    assert church.num_examples == 6
    with pytest.raises(errors.MissingDataError, match="bedroom_train_lmdb"):
        datasets.get_source("lsun", "train", str(tmp_path / "other"))
    with pytest.raises(ValueError, match="lsun_category must be"):
        datasets.get_source("lsun", "train", root, lsun_category="../bedroom")
    # No --data_dir: $LSUN_DIR and the usual places are searched.
    monkeypatch.setenv("LSUN_DIR", root)
    assert datasets.get_source("lsun", "train").ids() == keys


def test_nothing_found_says_where_it_looked_and_how_to_get_the_files(tmp_path, monkeypatch):
    monkeypatch.delenv("LSUN_DIR", raising=False)
    monkeypatch.setattr(lsun, "SEARCH_DIRS", ("$LSUN_DIR", str(tmp_path / "a"),
                                              str(tmp_path / "b")))
    with pytest.raises(errors.MissingDataError) as e:
        datasets.get_source("lsun", "train")
    message = str(e.value)
    assert str(tmp_path / "a") in message and str(tmp_path / "b") in message
    assert "download.py -c bedroom" in message and "bedroom_train_lmdb.zip" in message
    assert "--data_dir" in message and "$LSUN_DIR" in message and "\n" not in message


def test_bad_lmdb_inputs_are_one_clear_error(tmp_path):
    fake = tmp_path / "fake" / "bedroom_train_lmdb"
    fake.mkdir(parents=True)
    (fake / "data.mdb").write_bytes(b"\x00" * 8192)
    with pytest.raises(ValueError, match="is not an LMDB database"):
        datasets.get_source("lsun", "train", str(tmp_path / "fake"))
    (tmp_path / "nodata" / "bedroom_train_lmdb").mkdir(parents=True)
    with pytest.raises(ValueError, match="is not an LMDB database: it has no data.mdb"):
        datasets.get_source("lsun", "train", str(tmp_path / "nodata"))
    (tmp_path / "plain").mkdir()
    with pytest.raises(errors.MissingDataError, match="neither an LMDB directory"):
        datasets.get_source("lsun", "train", str(tmp_path / "plain"))
    make_lsun_lmdb(str(tmp_path / "empty"), num=0)
    with pytest.raises(errors.MissingDataError, match="is empty"):
        datasets.get_source("lsun", "train", str(tmp_path / "empty"))
    make_lsun_lmdb(str(tmp_path / "bad"), num=0, extra=CORRUPT)
    with pytest.raises(errors.MissingDataError, match="none of the 3 values"):
        datasets.get_source("lsun", "train", str(tmp_path / "bad"))


def test_is_complete_image_and_key_ids():
    webp = encode_image(smooth_image(20, 20), "WEBP")
    jpeg = encode_image(smooth_image(20, 20), "JPEG")
    png = encode_image(smooth_image(20, 20), "PNG")
    for good in (webp, jpeg, png):
        assert lsun.is_complete_image(good) and lsun.is_complete_image(memoryview(good))
    for bad in (webp[:-10], jpeg[:-10], png[:-20], b"", b"GIF", b"hello world"):
        assert not lsun.is_complete_image(bad)
    assert lsun.key_id(b"0a1b2c") == "0a1b2c"
    assert lsun.key_id(b"a b\n") == "hex:6120620a"
