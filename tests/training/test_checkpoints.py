"""Checkpoints: fall back past a damaged newest one; restore_models equals the trained nets."""
import os

import numpy as np
import pytest
import tensorflow as tf

from testutil import make_idx_dataset
from dcgan_keras.config import TrainConfig
from dcgan_keras.models import build_dcgan
from dcgan_keras.training import checkpoints, train_lib
from dcgan_keras.workdir import restore_models


def _gan():
    gan = build_dcgan(image_size=16, channels=1, z_dim=8, base_width=4)
    gan.compile()
    return gan


def test_damaged_latest_checkpoint_falls_back_to_the_previous(tmp_path):
    gan = _gan()
    ckpt = checkpoints.Checkpointer(str(tmp_path), gan, max_to_keep=3)
    first = [w.copy() for w in gan.generator.get_weights()]
    ckpt.save(1, 16)
    gan.generator.set_weights([w + 1 for w in first])
    gan.step.assign(2)
    newest = ckpt.save(2, 32)
    for name in os.listdir(tmp_path):  # damage the newest checkpoint's data
        if name.startswith(os.path.basename(newest) + ".data"):
            (tmp_path / name).write_bytes(b"garbage")
    restored = checkpoints.Checkpointer(str(tmp_path), (fresh := _gan()), max_to_keep=3)
    assert restored.restore_latest().endswith("ckpt-1")
    for a, b in zip(fresh.generator.get_weights(), first):
        np.testing.assert_array_equal(a, b)
    assert int(restored.examples_seen.numpy()) == 16


def test_empty_directory_restores_nothing(tmp_path):
    assert checkpoints.Checkpointer(str(tmp_path), _gan()).restore_latest() is None


def test_restore_models_returns_the_trained_networks(tmp_path):
    data = make_idx_dataset(str(tmp_path / "data"))
    config = TrainConfig(dataset="fashion_mnist", data_dir=data, image_size=16, channels=1,
                         base_width=4, z_dim=8, batch_size=16, max_steps=3,
                         allow_download=False)
    result = train_lib.train_and_evaluate(config, str(tmp_path / "run"))
    g, d, step, saved = restore_models(str(tmp_path / "run"))
    assert step == 3 and saved == config
    for a, b in zip(g.weights + d.weights,
                    result["gan"].generator.weights + result["gan"].discriminator.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(FileNotFoundError, match="no best checkpoint"):
        restore_models(str(tmp_path / "run"), "best")
    with pytest.raises(FileNotFoundError, match="not a training workdir"):
        restore_models(str(tmp_path))


def test_plan_fits_follows_the_data_epochs():
    """fit calls from a step to the last one: the rest of a started epoch, whole epochs,
    a partial last epoch; their steps add up."""
    plan = train_lib.plan_fits(6, 23, 4)  # stopped at step 6 of 4-step epochs, to 23
    assert plan == [dict(initial_epoch=1, epochs=2, steps_per_epoch=2, steps=2),
                    dict(initial_epoch=2, epochs=5, steps_per_epoch=4, steps=12),
                    dict(initial_epoch=5, epochs=6, steps_per_epoch=3, steps=3)]
    assert train_lib.plan_fits(0, 8, 4) == [dict(initial_epoch=0, epochs=2,
                                                 steps_per_epoch=4, steps=8)]
    assert train_lib.plan_fits(8, 8, 4) == []
    assert train_lib.plan_fits(5, 6, 4) == [dict(initial_epoch=1, epochs=2,
                                                 steps_per_epoch=1, steps=1)]


def test_checkpoint_reader_reads_the_given_checkpoint_on_every_file_system(tmp_path):
    v = tf.Variable([1.0, 2.0, 3.0])
    for base in (str(tmp_path), f"ram://checkpoint_reader_{os.getpid()}"):
        first = tf.train.Checkpoint(v=v).write(base + "/ckpt-1")
        v.assign([4.0, 5.0, 6.0])
        tf.train.Checkpoint(v=v).write(base + "/ckpt-2")
        reader = checkpoints.checkpoint_reader(first)
        np.testing.assert_array_equal(reader.get_tensor("v/.ATTRIBUTES/VARIABLE_VALUE"),
                                      [1.0, 2.0, 3.0])
        v.assign([1.0, 2.0, 3.0])
    # Why checkpoint_reader does not always call tf.train.load_checkpoint: on ram:// a
    # checkpoint's prefix is "a directory" (remove its branch when this fails).
    assert tf.io.gfile.isdir(first)
    with pytest.raises(ValueError, match="Couldn't find 'checkpoint' file"):
        tf.train.load_checkpoint(first)
