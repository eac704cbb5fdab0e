"""Each training callback on its own with a plain `DCGAN.fit`."""
import glob
import io
import json
import os
import signal
import threading

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
    # the grid's fixed z: seed + 1, from G's prior (the paper's U(-1, 1))
    z = np.random.default_rng(3 + 1).uniform(-1, 1, (4, 8)).astype(np.float32)
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


class _Handler:
    """A signal handler that records the signals it gets."""

    def __init__(self):
        self.calls = []

    def __call__(self, signum, frame):
        self.calls.append(signum)


@pytest.fixture
def handlers():
    """Recording handlers for SIGTERM and SIGINT during the test (the ones before after)."""
    installed = {signal.SIGTERM: _Handler(), signal.SIGINT: _Handler()}
    originals = {signum: signal.signal(signum, handler) for signum, handler in installed.items()}
    yield installed
    for signum, handler in originals.items():
        signal.signal(signum, handler)


class _AtStep(keras.callbacks.Callback):
    """Calls `action(model)` as the step that makes the model's step `at` begins, and
    records the SIGTERM handler at every step end."""

    def __init__(self, at, action):
        super().__init__()
        self.at, self.action, self.handlers = at, action, []

    def on_train_batch_begin(self, batch, logs=None):
        if int(self.model.step.numpy()) == self.at - 1:
            self.action(self.model)

    def on_train_batch_end(self, batch, logs=None):
        self.handlers.append(signal.getsignal(signal.SIGTERM))


def _signal_twice(signum):
    def send(model):
        for _ in range(2):
            os.kill(os.getpid(), signum)  # Python runs the handler before kill returns
    return send


def _checkpoints(directory):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(directory, "*.index")))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_graceful_stop_checkpoints_the_step_a_signal_came_in_and_stops(tmp_path, handlers,
                                                                        signum):
    gan = _gan()
    ckpt = callbacks.Checkpoint(str(tmp_path), batch_size=BATCH, every_n_steps=0)
    stop = callbacks.GracefulStop(ckpt)
    at = _AtStep(6, _signal_twice(signum))  # mid-epoch 2 (4 steps an epoch)
    gan.fit(_data(), epochs=3, verbose=0, callbacks=[ckpt, stop, at])
    assert stop.signum == signum and int(gan.step.numpy()) == 6
    assert _checkpoints(tmp_path) == ["ckpt-4.index", "ckpt-6.index"]  # epoch end; signal
    reader = tf.train.load_checkpoint(str(tmp_path / "ckpt-6"))
    assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 6
    assert reader.get_tensor("examples_seen/.ATTRIBUTES/VARIABLE_VALUE") == 6 * BATCH
    # The handlers were GracefulStop's during fit and are the earlier ones after it; the
    # second signal went to the earlier handler (Ctrl-C twice aborts).
    assert at.handlers[0] == stop._handle
    assert {s: signal.getsignal(s) for s in handlers} == handlers
    assert handlers[signum].calls == [signum]
    assert not handlers[({signal.SIGTERM, signal.SIGINT} - {signum}).pop()].calls


def test_graceful_stop_without_a_signal_and_after_a_fit_that_raised(tmp_path, handlers):
    gan = _gan()
    ckpt = callbacks.Checkpoint(str(tmp_path), batch_size=BATCH, every_n_steps=0)
    stop = callbacks.GracefulStop(ckpt)

    def fail(model):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        gan.fit(_data(), epochs=1, verbose=0, callbacks=[ckpt, stop, _AtStep(2, fail)])
    assert signal.getsignal(signal.SIGTERM) == stop._handle  # no on_train_end: still set
    at = _AtStep(0, lambda model: None)
    gan.fit(_data(), epochs=1, verbose=0, callbacks=[ckpt, stop, at])
    assert stop.signum is None and int(gan.step.numpy()) == 1 + 4  # ran to the end
    assert set(at.handlers) == {stop._handle}
    # The handlers before the first fit are back, not GracefulStop's own.
    assert {s: signal.getsignal(s) for s in handlers} == handlers


def test_graceful_stop_outside_the_main_thread_installs_nothing(tmp_path, handlers):
    """Python delivers signals to the main thread only (signal.signal raises elsewhere)."""
    gan = _gan()
    stop = callbacks.GracefulStop(callbacks.Checkpoint(str(tmp_path), batch_size=BATCH))
    at = _AtStep(0, lambda model: None)
    errors = []

    def train():
        try:
            gan.fit(_data(8), epochs=1, verbose=0, callbacks=[stop, at])
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    thread = threading.Thread(target=train)
    thread.start()
    thread.join()
    assert not errors and at.handlers == [handlers[signal.SIGTERM]]
    assert {s: signal.getsignal(s) for s in handlers} == handlers


def _poisoned(value):
    def poison(variable):
        variable.assign(np.full(variable.shape, value, np.float32))
    return poison


@pytest.mark.parametrize("entry,pick,value", [
    ("discriminator", lambda gan: gan.discriminator.trainable_weights[0], np.nan),
    ("generator", lambda gan: gan.generator.get_layer("project_bn").moving_variance, np.nan),
    ("ema_generator", lambda gan: gan.ema_generator.get_layer("block1_bn").moving_mean,
     np.inf),
    ("g_optimizer", lambda gan: gan.g_optimizer.variables[-1], -np.inf),  # a slot
    ("egan_parent_1_optimizer",
     lambda gan: gan.checkpoint_extras()["egan_parent_1_optimizer"].variables[-1], np.nan),
])
def test_checkpoint_refuses_a_non_finite_value_in_any_variable_it_writes(tmp_path, entry,
                                                                         pick, value):
    if entry.startswith("egan"):
        from dcgan_keras.evolution import build_egan
        gan = build_egan(**TINY, parents=2, fitness_batch=16)
        gan.compile()
    else:
        gan = _gan(ema_decay=0.5)
    ckpt = callbacks.Checkpoint(str(tmp_path), batch_size=BATCH)
    ckpt.set_model(gan)
    gan.step.assign(1)
    ckpt.save()
    variable = pick(gan)
    good = variable.numpy().copy()
    _poisoned(value)(variable)
    gan.step.assign(2)
    with pytest.raises(callbacks.NonFiniteError) as error:
        ckpt.save()
    assert str(error.value) == (f"not writing a checkpoint at step 2: 1 variables are NaN/Inf "
                                f"({entry}/{variable.path})")
    assert _checkpoints(tmp_path) == ["ckpt-1.index"]
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-1")
    variable.assign(good)  # repaired: the refused step is written now
    ckpt.save()
    assert _checkpoints(tmp_path) == ["ckpt-1.index", "ckpt-2.index"]
