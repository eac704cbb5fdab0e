"""Each training callback on its own with a plain `DCGAN.fit`."""
import glob
import io
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from dcgan_keras.models import build_dcgan
from dcgan_keras.training import callbacks
from dcgan_keras.utils.images import read_png

TINY = dict(image_size=16, channels=1, z_dim=8, base_width=4)
BATCH = 8


def _data(n=32):
    real = np.random.default_rng(0).uniform(-1, 1, (n, 16, 16, 1)).astype("float32")
    return tf.data.Dataset.from_tensor_slices(real).batch(BATCH)  # n // 8 steps an epoch


def _gan(**kwargs):
    keras.utils.set_random_seed(0)
    gan = build_dcgan(**TINY, **kwargs)
    gan.compile()
    return gan


class _Recorder(keras.callbacks.Callback):
    """Records G's weights (BatchNorm statistics included) and the metric count per step."""

    def __init__(self):
        super().__init__()
        self.weights, self.counts = [], []

    def on_train_begin(self, logs=None):
        self.weights.append([w.numpy().copy() for w in self.model.generator.weights])

    def on_train_batch_end(self, batch, logs=None):
        self.weights.append([w.numpy().copy() for w in self.model.generator.weights])
        self.counts.append(int(self.model.d_loss_tracker.count.numpy()))


def test_ema_generator_follows_the_moving_average_of_every_weight():
    gan = _gan()
    recorder = _Recorder()
    decay = 0.7
    gan.fit(_data(), epochs=2, verbose=0, callbacks=[callbacks.EMAGenerator(decay), recorder])
    expected = recorder.weights[0]
    for step_weights in recorder.weights[1:]:
        expected = [decay * e + (1 - decay) * w for e, w in zip(expected, step_weights)]
    names = [w.path for w in gan.ema_generator.weights]
    assert any("moving_variance" in n for n in names)  # BatchNorm statistics too
    assert not gan.ema_generator.trainable_weights  # not trained by any optimizer
    for name, got, want in zip(names, gan.ema_generator.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)
    assert not np.allclose(gan.ema_generator.get_weights()[0], gan.generator.get_weights()[0])
    with pytest.raises(ValueError, match="decay must be in"):
        callbacks.EMAGenerator(1.0)


class _Samples(keras.callbacks.Callback):
    """G(z) and EMA G(z) in inference mode at the start of training and each epoch end."""

    def __init__(self, z):
        super().__init__()
        self.z, self.images = z, []

    def _record(self):
        self.images.append([net(self.z, training=False).numpy() for net in (
            self.model.generator, self.model.ema_generator)])

    def on_train_begin(self, logs=None):
        self._record()

    def on_epoch_end(self, epoch, logs=None):
        self._record()


def _tiles(grid, n, cols, size=16, pad=2):
    """Tile i of a make_grid image: row i // cols, column i % cols."""
    return np.stack([grid[pad + (i // cols) * (size + pad):][:size,
                          pad + (i % cols) * (size + pad):][:, :size] for i in range(n)])


def test_sample_grid_from_a_fixed_z_at_start_and_every_epoch_end(tmp_path):
    gan = _gan(ema_decay=0.5)
    grid = callbacks.SampleGrid(str(tmp_path / "samples"), num_images=4, seed=3,
                                summary_writer=str(tmp_path))
    z = np.random.default_rng(3 + 1).standard_normal((4, 8)).astype(np.float32)
    samples = _Samples(z)
    gan.fit(_data(), epochs=2, verbose=0, callbacks=[grid, samples])
    assert sorted(os.listdir(tmp_path / "samples")) == [
        "ema_epoch_0000.png", "ema_epoch_0001.png", "ema_epoch_0002.png",
        "epoch_0000.png", "epoch_0001.png", "epoch_0002.png"]
    np.testing.assert_array_equal(grid.z, z)  # the fixed noise: a function of the seed
    # Tile i of each grid is round((G(z_i) + 1) * 127.5) of G (and of the EMA G) at
    # that moment: the start, and each epoch end.
    for epoch, images in enumerate(samples.images):
        for prefix, generated in zip(("", "ema_"), images):
            png = read_png(str(tmp_path / "samples" / f"{prefix}epoch_{epoch:04d}.png"))
            assert png.shape == (2 * 18 + 2, 2 * 18 + 2, 1)
            want = np.round((generated + 1) * 127.5).astype(np.uint8)
            np.testing.assert_array_equal(_tiles(png, 4, 2), want, err_msg=prefix + str(epoch))
    assert not np.array_equal(samples.images[-1][0], samples.images[-1][1])  # EMA != G
    images = {(v.tag, e.step): tf.io.decode_png(v.tensor.string_val[2]).numpy()
              for path in glob.glob(str(tmp_path / "events.*"))
              for e in tf.compat.v1.train.summary_iterator(path) for v in e.summary.value}
    assert {("samples", 0), ("samples", 8), ("samples_ema", 8)} <= set(images)
    np.testing.assert_array_equal(images["samples_ema", 8],
                                  read_png(str(tmp_path / "samples" / "ema_epoch_0002.png")))
    # Called again (a resumed run): no second start grid; named by the data epoch.
    again = callbacks.SampleGrid(str(tmp_path / "resumed"), num_images=4, steps_per_epoch=4)
    gan.fit(_data(16), epochs=1, verbose=0, callbacks=[again])
    assert sorted(os.listdir(tmp_path / "resumed")) == ["ema_step_00000010.png",
                                                        "step_00000010.png"]


def test_checkpoint_every_n_steps_and_epoch_end_restores_exactly(tmp_path):
    gan = _gan()
    ckpt = callbacks.Checkpoint(str(tmp_path), batch_size=BATCH, every_n_steps=3,
                                max_to_keep=10)
    gan.fit(_data(), epochs=2, verbose=0, callbacks=[ckpt])
    saved = sorted(int(p.split("-")[-1].split(".")[0]) for p in glob.glob(str(tmp_path / "*.index")))
    assert saved == [3, 4, 6, 8]  # steps 3 and 6 (every 3), 4 and 8 (epoch ends)
    reader = tf.train.load_checkpoint(str(tmp_path / "ckpt-8"))
    assert reader.get_tensor("examples_seen/.ATTRIBUTES/VARIABLE_VALUE") == 8 * BATCH
    fresh = _gan()
    restore = callbacks.Checkpoint(str(tmp_path), batch_size=BATCH)
    restore.set_model(fresh)
    assert restore.restore().endswith("ckpt-8")
    assert int(fresh.step.numpy()) == 8
    for a, b in zip(gan.weights + gan.d_optimizer.variables + gan.g_optimizer.variables,
                    fresh.weights + fresh.d_optimizer.variables + fresh.g_optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    # The restored model trains on exactly like the original.
    for model in (gan, fresh):
        model.fit(_data(8), epochs=1, verbose=0)
    np.testing.assert_allclose(fresh.generator.get_weights()[0],
                               gan.generator.get_weights()[0], rtol=1e-6, atol=1e-7)


def test_sample_quality_keeps_the_checkpoint_with_the_lowest_fid(tmp_path):
    gan = _gan()
    fids = iter([5.0, 3.0, 4.0])
    evaluator = lambda generator: {"fid": next(fids), "kid": 0.1}  # noqa: E731
    ckpt = callbacks.Checkpoint(str(tmp_path / "checkpoints"), batch_size=BATCH)
    quality = callbacks.SampleQuality(evaluator, every_n_epochs=1, checkpoint=ckpt,
                                      best_dir=str(tmp_path), summary_writer=str(tmp_path),
                                      total_steps=12)
    history = gan.fit(_data(), epochs=3, verbose=0, callbacks=[ckpt, quality])
    assert [step for step, _ in quality.history] == [4, 8, 12]
    assert history.history["fid"] == [5.0, 3.0, 4.0]  # in the epoch logs too
    best = json.load(open(tmp_path / "best.json"))
    assert best["step"] == 8 and best["fid"] == 3.0
    assert tf.train.latest_checkpoint(str(tmp_path / "best_checkpoint")).endswith("ckpt-8")


def test_train_logger_logs_window_means_at_global_steps(tmp_path):
    gan = _gan()
    stream = io.StringIO()
    logger = callbacks.TrainLogger(batch_size=BATCH, log_every=2, total_steps=8,
                                   steps_per_epoch=4, summary_writer=str(tmp_path),
                                   stream=stream)
    recorder = _Recorder()
    gan.fit(_data(), epochs=2, verbose=0, callbacks=[recorder, logger])
    # The metrics restart after every log: 1, 2 steps averaged, then again from 1.
    assert recorder.counts == [1, 2, 1, 2, 1, 2, 1, 2]
    lines = stream.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["2/8", "4/8", "6/8", "8/8"]
    assert "(epoch 2.00)" in lines[-1] and "img/s" in lines[-1] and "D(G(z))" in lines[-1]
    scalars = {}
    for path in glob.glob(str(tmp_path / "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append(
                    (event.step, float(tf.make_ndarray(value.tensor))))
    for tag in ("d_loss", "g_loss", "d_x", "d_g_z", "images_per_sec"):
        assert [s for s, _ in scalars[f"train/{tag}"]] == [2, 4, 6, 8], tag
    assert scalars["train/d_loss"][-1][1] == pytest.approx(logger.logs["d_loss"])
    assert logger.images_per_sec > 0
