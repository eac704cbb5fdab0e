"""Callbacks that show how a run goes: sample grids, the EMA generator, FID/KID with
the best checkpoint, TensorBoard scalars and the progress line.

Each works on its own with `fit` and counts in the model's own step (see `steps`).

Why not Keras' own `TensorBoard` and `ProgbarLogger`: both count `fit`'s epochs and
batches (a resumed run would log over its earlier steps), TensorBoard writes into
logdir/train with `epoch_`/`batch_` tags, and the progress bar prints nothing between
epoch ends when the output is a log file. `TrainLogger` logs `train/*` at global steps,
one line per update in a file, and reports images/s and the ETA.
"""
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from dcgan_keras.models import latent
from dcgan_keras.training import checkpoints
from dcgan_keras.training.progress import Progress
from dcgan_keras.training.steps import StepCallback, crossed, model_step
from dcgan_keras.utils import images as image_utils


def _writer(summary_writer, is_chief):
    """A tf.summary writer from a writer, a log directory or None (no TensorBoard)."""
    if not is_chief or summary_writer is None:
        return tf.summary.create_noop_writer()
    if isinstance(summary_writer, (str, os.PathLike)):
        return tf.summary.create_file_writer(os.fspath(summary_writer))
    return summary_writer


class EMAGenerator(keras.callbacks.Callback):
    """Keeps `model.ema_generator`: an exponential moving average of G's weights,
    BatchNorm statistics included, updated after every train step inside the step itself
    (exact with steps_per_execution > 1 and under tf.distribute; see
    `DCGAN.enable_ema`). The EMA generator is saved by `Checkpoint` and `.keras` files,
    and drawn by `SampleGrid` and evaluated by `SampleQuality` next to G.

    Args:
        decay: e.g. 0.999; ema = decay * ema + (1 - decay) * G after each step.
    """

    def __init__(self, decay=0.999):
        super().__init__()
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay

    def set_model(self, model):
        super().set_model(model)
        if model.ema_generator is None or model.ema_decay != self.decay:
            model.enable_ema(self.decay)


class SampleGrid(StepCallback):
    """Writes G(z) for a fixed z as a PNG grid and a TensorBoard image: at the start of
    training (step 0, `epoch_0000.png`) and at every epoch end (and `ema_*.png` for the
    EMA generator, if any).

    Args:
        directory: where the PNGs go.
        z: the fixed noise [N, z_dim]; default `num_images` vectors drawn from `seed`.
        num_images, seed: used when z is None.
        steps_per_epoch: the data's epoch length (see the module doc).
        summary_writer: a tf.summary writer or a log directory (None: PNGs only).
        is_chief: False on the non-chief workers of a multi-worker run (no files).
    """

    def __init__(self, directory, z=None, num_images=64, seed=0, steps_per_epoch=None,
                 summary_writer=None, is_chief=True):
        super().__init__(steps_per_epoch)
        self.directory = directory
        self.z = None if z is None else np.asarray(z, np.float32)
        self.num_images, self.seed = num_images, seed
        self.is_chief = is_chief
        self.writer = _writer(summary_writer, is_chief)
        self.last = []  # (name, grid) of the latest write, for tests and notebooks

    @staticmethod
    def fixed_noise(num_images, z_dim, seed, distribution):
        """The fixed z of every sample grid of a run: a function of the seed, from G's
        prior (models/latent.py)."""
        return latent.numpy(np.random.default_rng(seed + 1), (num_images, z_dim),
                            distribution)

    def write(self, name):
        if self.z is None:
            self.z = self.fixed_noise(self.num_images, self.model.z_dim, self.seed,
                                      latent.of(self.model.generator))
        step = model_step(self.model)
        nets = [("", "samples", self.model.generator)]
        if self.model.ema_generator is not None:
            nets.append(("ema_", "samples_ema", self.model.ema_generator))
        self.last = []
        for prefix, tag, generator in nets:
            grid = image_utils.make_grid(generator(self.z, training=False).numpy())
            if self.is_chief:
                image_utils.write_png(os.path.join(self.directory, f"{prefix}{name}.png"),
                                      grid)
                with self.writer.as_default():
                    tf.summary.image(tag, grid[None], step=step)
            self.last.append((prefix + name, grid))

    def on_train_begin(self, logs=None):
        if model_step(self.model) == 0:
            self.write("epoch_0000")

    def on_epoch_end(self, epoch, logs=None):
        self.write(self.epoch_end_name(epoch))
        self.writer.flush()


class SampleQuality(StepCallback):
    """FID and KID of G (and of the EMA generator) every `every_n_epochs` epochs and when
    training reaches `total_steps`, logged to TensorBoard as eval/* and to the epoch logs;
    with `checkpoint`, the checkpoint with the lowest FID is kept in
    `best_dir`/best_checkpoint (+ best.json), which survives restarts (DCGANs can
    collapse late in training).

    Args:
        evaluator: a callable generator -> {"fid": ..., "kid": ...}
            (evaluation.sample_quality.Evaluator).
        every_n_epochs: data epochs (or fit epochs) between evaluations.
        steps_per_epoch: the data's epoch length (see the module doc).
        total_steps: the run's last step, also evaluated (None: every train end).
        checkpoint: the run's `Checkpoint` callback, to keep the best checkpoint.
        best_dir: where best_checkpoint/ and best.json go (the workdir).
        summary_writer, is_chief: as for SampleGrid.
    """

    def __init__(self, evaluator, every_n_epochs=1, steps_per_epoch=None, total_steps=None,
                 checkpoint=None, best_dir=None, summary_writer=None, is_chief=True):
        super().__init__(steps_per_epoch)
        self.evaluator, self.every_n_epochs = evaluator, every_n_epochs
        self.total_steps, self.checkpoint, self.best_dir = total_steps, checkpoint, best_dir
        self.is_chief = is_chief
        self.writer = _writer(summary_writer, is_chief)
        self._best = None
        self._scored_step = None
        self.history = []  # (step, scores)

    def evaluate(self):
        step = model_step(self.model)
        if step == self._scored_step:
            return self.history[-1][1]
        scores = dict(self.evaluator(self.model.generator))
        if self.model.ema_generator is not None:
            scores.update({f"{k}_ema": v for k, v in
                           self.evaluator(self.model.ema_generator).items()})
        with self.writer.as_default():
            for name, value in scores.items():
                tf.summary.scalar(f"eval/{name}", value, step=step)
        self.writer.flush()
        logging.info("step %d: %s", step, ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
        if self.checkpoint is not None and self.best_dir is not None:
            if self._best is None:
                self._best = checkpoints.BestKeeper(self.best_dir,
                                                    self.checkpoint.checkpointer,
                                                    self.is_chief)
            self._best.update(scores["fid"], step, step * self.checkpoint.batch_size, scores)
        self._scored_step = step
        self.history.append((step, scores))
        return scores

    def on_epoch_end(self, epoch, logs=None):
        step = model_step(self.model)
        if self.steps_per_epoch is None:
            due = (epoch + 1) % self.every_n_epochs == 0
        else:
            due = crossed(step - 1, step, self.steps_per_epoch * self.every_n_epochs)
        if due or step == self.total_steps:
            scores = self.evaluate()
            if logs is not None:
                logs.update(scores)

    def on_train_end(self, logs=None):
        if self.total_steps is None or model_step(self.model) == self.total_steps:
            self.evaluate()


class TrainLogger(StepCallback):
    """Every `log_every` steps (and at the last step): the training metrics averaged
    over the steps since the previous log (the model's metrics are reset after each
    log), and images/s, as TensorBoard scalars train/*, and the progress line
    `step k/n (epoch e) d_loss .. g_loss .. D(x) .. D(G(z)) .. | img/s | ETA`.

    Args:
        batch_size: the global batch size (images/s).
        log_every: steps between logs.
        total_steps: the run's last step (progress and ETA; None: unknown).
        steps_per_epoch: shown as the epoch in the progress line.
        summary_writer, is_chief: as for SampleGrid (non-chiefs print but write nothing).
        stream: where the progress line goes (default stdout).
    """

    def __init__(self, batch_size, log_every=50, total_steps=None, steps_per_epoch=None,
                 summary_writer=None, is_chief=True, stream=None):
        super().__init__(steps_per_epoch)
        self.batch_size, self.log_every, self.total_steps = batch_size, log_every, total_steps
        self.writer = _writer(summary_writer, is_chief)
        self.stream = stream
        self.progress = None
        self.logs, self.images_per_sec = {}, 0.0

    def on_train_begin(self, logs=None):
        self._step = model_step(self.model)
        self._window = (time.perf_counter(), self._step)
        if self.progress is None:
            self.progress = Progress(self.total_steps, self.steps_per_epoch, self._step,
                                     self.stream)

    def on_train_batch_end(self, batch, logs=None):
        before, self._step = self._step, model_step(self.model)
        if not (crossed(before, self._step, self.log_every) or self._step == self.total_steps):
            return
        order = [m.name for m in self.model.metrics]  # d_loss, g_loss, d_x, d_g_z
        self.logs = {name: float(logs[name]) for name in
                     sorted(logs or {}, key=lambda n: (order.index(n) if n in order
                                                       else len(order), n))}
        self.model.reset_metrics()  # the next log averages the steps after this one
        now = time.perf_counter()
        start, start_step = self._window
        self.images_per_sec = (self._step - start_step) * self.batch_size / (now - start)
        self._window = (now, self._step)
        with self.writer.as_default():
            for name, value in self.logs.items():
                tf.summary.scalar(f"train/{name}", value, step=self._step)
            tf.summary.scalar("train/images_per_sec", self.images_per_sec, step=self._step)
        self.progress.update(self._step, self.logs, self.images_per_sec)

    def on_train_end(self, logs=None):
        self.writer.flush()
        if self.total_steps is None or self._step == self.total_steps:
            self.progress.close()


class ProfileSteps(StepCallback):
    """Writes a TensorBoard profile (its Profile tab) of global steps `first`..`last`.

    `tf.profiler.experimental` runs from the start of step `first` (when the model's step
    is first - 1) to the end of step `last`, into logdir/plugins/profile/<run>/: the time
    of every op on every thread, the input pipeline and the step breakdown. Steps before
    `first` are left out, so start after the first few (tracing, warm-up). A run resumed
    past `last` profiles nothing.
    """

    def __init__(self, logdir, first, last, is_chief=True):
        super().__init__()
        self.logdir, self.first, self.last = os.fspath(logdir), int(first), int(last)
        self.is_chief, self.active, self.done = is_chief, False, False

    def on_train_batch_begin(self, batch, logs=None):
        if self.is_chief and not (self.active or self.done) and (
                self.first - 1 <= model_step(self.model) < self.last):
            tf.profiler.experimental.start(self.logdir)
            self.active = True
            logging.info("profiling steps %d to %d into %s/plugins/profile", self.first,
                         self.last, self.logdir)

    def on_train_batch_end(self, batch, logs=None):
        if self.active and model_step(self.model) >= self.last:
            self._stop()

    def on_train_end(self, logs=None):
        if self.active:
            self._stop()

    def _stop(self):
        tf.profiler.experimental.stop()
        self.active, self.done = False, True
        logging.info("profile written: tensorboard --logdir=%s, tab Profile", self.logdir)
