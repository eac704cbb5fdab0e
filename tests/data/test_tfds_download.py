"""A real tensorflow-datasets download_and_prepare, its download served from local files.

Issue 15: every tfds build crashed before downloading anything ("No module named
'importlib_resources'"), and tfds.testing.mock_data never reaches that code. Here
CIFAR-10's real builder downloads a tiny cifar-10-binary.tar.gz from an HTTP server on
127.0.0.1 (through tfds' own downloader, extractor, checksum recording, example
writer and shuffler), and the prepared split is read back through datasets.get_source.
"""
import functools
import http.server
import io
import tarfile
import threading

import numpy as np
import pytest
import tensorflow as tf

from dcgan_keras.data import datasets, pipeline


def _cifar_tar_gz(path, per_batch=3, seed=0):
    """A cifar-10-binary.tar.gz in CIFAR's format: per record 1 label byte, 3072 pixels."""
    rng = np.random.default_rng(seed)
    records = {}
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rows = np.zeros((per_batch, 3073), np.uint8)
        rows[:, 0] = rng.integers(0, 10, per_batch)
        rows[:, 1:] = rng.integers(0, 256, (per_batch, 3072))
        records[name] = rows
    files = {name: rows.tobytes() for name, rows in records.items()}
    files["batches.meta.txt"] = "\n".join(f"class{k}" for k in range(10)).encode()
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo("cifar-10-batches-bin/" + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return records


@pytest.fixture
def local_server(tmp_path):
    serve = tmp_path / "serve"
    serve.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(serve))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield serve, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_cifar10_download_and_prepare_runs_on_our_stack(tmp_path, local_server, monkeypatch):
    import tensorflow_datasets as tfds
    from tensorflow_datasets.image_classification import cifar
    serve, url = local_server
    records = _cifar_tar_gz(str(serve / "cifar-10-binary.tar.gz"))
    real_info = cifar.Cifar10._cifar_info
    monkeypatch.setattr(cifar.Cifar10, "_cifar_info", property(
        lambda self: real_info.fget(self)._replace(url=f"{url}/cifar-10-binary.tar.gz")))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    data_dir = str(tmp_path / "tensorflow_datasets")
    # What the train binary does with --allow_download (tfds.load(download=True)).
    source = datasets.get_source("cifar10", "train", data_dir, allow_download=True)
    assert source.num_examples == 15 and source.num_classes == 10
    assert tfds.builder("cifar10", data_dir=data_dir).info.splits["test"].num_examples == 3
    # The prepared images are the downloaded pixels (CHW bytes -> HWC), in some order.
    images, labels = pipeline.load_numpy(source, 32, 3)
    got = sorted(np.rint((images + 1) * 127.5).astype(np.uint8).tobytes()[i * 3072:(i + 1) * 3072]
                 for i in range(15))
    rows = np.concatenate([records[f"data_batch_{i}.bin"] for i in range(1, 6)])
    want = sorted(r[1:].reshape(3, 32, 32).transpose(1, 2, 0).tobytes() for r in rows)
    assert got == want
    assert sorted(labels.tolist()) == sorted(rows[:, 0].tolist())
    # And it is read offline afterwards, as a training stream.
    offline = datasets.get_source("cifar10", "train", data_dir, allow_download=False)
    batch = next(iter(pipeline.train_dataset(offline, 16, 3, 5, seed=0, start_example=17)))
    assert batch.shape == (5, 16, 16, 3) and batch.dtype == tf.float32


def test_modules_tfds_imports_while_preparing_are_installed():
    """tfds imports these lazily, only inside download_and_prepare; pip check misses them
    because tfds declares importlib_resources for Python < 3.9 only."""
    import importlib
    for module in ("importlib_resources", "etils.epath", "promise", "tensorflow_metadata",
                   "array_record", "simple_parsing", "immutabledict", "scipy.io"):
        importlib.import_module(module)
