"""workdir.py, the one reader of a training workdir and an export: paths, metadata, the
weights fingerprint, a checkpoint that does not fit its config.json. (Restoring a trained
run: tests/training/test_checkpoints.py; rebuilding from an export: tests/binaries/.)"""
import hashlib
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from dcgan_keras import config as config_lib
from dcgan_keras import workdir
from dcgan_keras.models import Discriminator, Generator
from dcgan_keras.training import checkpoints


def _write_config(path):
    os.makedirs(path, exist_ok=True)
    config_lib.save(config_lib.TrainConfig(dataset="fashion_mnist", image_size=16, channels=1,
                                           base_width=4, z_dim=8), str(path))


def test_paths_and_kinds_of_directories(tmp_path):
    assert workdir.default_export_dir("runs/a") == os.path.join("runs/a", "export")
    assert not workdir.is_training_workdir(str(tmp_path)) and not workdir.is_export(tmp_path)
    assert not workdir.is_training_workdir("") and not workdir.is_export("")
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / workdir.METADATA).write_text("{}")
    assert workdir.is_training_workdir(str(tmp_path)) and workdir.is_export(str(tmp_path))


def test_load_metadata(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not an export directory"):
        workdir.load_metadata(str(tmp_path))
    (tmp_path / "metadata.json").write_text(json.dumps({"z_dim": 8, "image_shape": [16, 16, 1]}))
    assert workdir.load_metadata(str(tmp_path)) == {"z_dim": 8, "image_shape": [16, 16, 1]}


def test_weights_fingerprint_is_sha256_of_shapes_dtypes_and_values():
    g = Generator(image_size=16, channels=1, z_dim=8, base_width=4)
    digest = hashlib.sha256()
    for w in g.weights:
        value = w.numpy()
        digest.update(f"{value.dtype}{value.shape}".encode())
        digest.update(value.tobytes())
    assert workdir.weights_fingerprint(g) == digest.hexdigest()[:16]
    before = workdir.weights_fingerprint(g)
    g.weights[0].assign(g.weights[0] + 1e-3)
    assert workdir.weights_fingerprint(g) != before


def test_resolve_checkpoint_and_a_checkpoint_of_another_model(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="no latest checkpoint in"):
        workdir.resolve_checkpoint(str(run))
    with pytest.raises(FileNotFoundError, match="pass latest, best or a ckpt-N prefix"):
        workdir.resolve_checkpoint(str(run), str(run / "ckpt-9"))
    # A checkpoint of a wider G than config.json describes (base_width 8, not 4).
    g = Generator(image_size=16, channels=1, z_dim=8, base_width=8)
    d = Discriminator(image_size=16, channels=1, base_width=8)
    path = tf.train.Checkpoint(generator=g, discriminator=d, step=tf.Variable(
        5, dtype=tf.int64)).save(str(run / "checkpoints" / "ckpt"))
    assert workdir.resolve_checkpoint(str(run), path) == path
    _write_config(run)
    with pytest.raises(workdir.CheckpointMismatchError, match="does not fit the model "
                       "described by"):
        workdir.restore_models(str(run), path)
    assert checkpoints.CheckpointMismatchError is workdir.CheckpointMismatchError
    np.testing.assert_equal(workdir.first_line(ValueError("a\nb")), "a")
