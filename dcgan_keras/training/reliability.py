"""Callbacks and helpers that keep a run safe: the NaN guard, atomic checkpoints, the
SIGTERM/SIGINT handler, and the rollback to the last checkpoint after a NaN.

The callbacks work on their own with `fit` and count in the model's own step (see
`steps`); `train_with_rollback` wraps the `fit` calls of `train_lib`.
"""
import signal
import threading

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from dcgan_keras.training import checkpoints
from dcgan_keras.training.steps import StepCallback, crossed, model_step


class NonFiniteError(RuntimeError):
    """A loss or weight became NaN or infinite."""


class NonFiniteGuard(keras.callbacks.Callback):
    """Raises NonFiniteError at the first step (or execution) whose logged losses are NaN
    or Inf, before any other callback of that step runs (put it first): training stops
    and no checkpoint of the broken state is written (`Checkpoint` also checks every
    weight before it writes)."""

    def on_train_batch_end(self, batch, logs=None):
        bad = sorted(k for k, v in (logs or {}).items()
                     if isinstance(v, float) and not np.isfinite(v))
        if bad:
            raise NonFiniteError(
                f"non-finite {', '.join(f'{k}={logs[k]}' for k in bad)} at step "
                f"{model_step(self.model)}")


class Checkpoint(StepCallback):
    """Writes the whole training state every `every_n_steps` steps, at every epoch end and
    when training ends: both nets, both optimizers (slots, loss scale), the step (which
    also fixes the noise), the data position (examples seen = step x batch size), the RNG
    seed and the EMA generator. `restore()` reads the newest one back, so a run resumed
    from it continues exactly (see `training.checkpoints.Checkpointer`: written under a
    temporary name, then listed, so a crash mid-save keeps the previous one).

    Args:
        directory: the checkpoint directory (e.g. workdir/checkpoints).
        batch_size: the global batch size (for the data position).
        every_n_steps: steps between checkpoints (0: only at epoch ends).
        max_to_keep: newest checkpoints kept.
        is_chief, worker_index: multi-worker runs (only the chief writes `directory`).
    """

    def __init__(self, directory, batch_size, every_n_steps=500, max_to_keep=3,
                 is_chief=True, worker_index=0):
        super().__init__()
        self.directory, self.batch_size = directory, batch_size
        self.every_n_steps, self.max_to_keep = every_n_steps, max_to_keep
        self.is_chief, self.worker_index = is_chief, worker_index
        self._checkpointer = None
        self._saved_step = None

    @property
    def checkpointer(self):
        """The Checkpointer over the model (made on first use, after EMAGenerator ran)."""
        if self._checkpointer is None:
            extra = ({"ema_generator": self.model.ema_generator}
                     if self.model.ema_generator is not None else {})
            # More state a model keeps (E-GAN: the other parents, their optimizers).
            extra.update(getattr(self.model, "checkpoint_extras", dict)())
            self._checkpointer = checkpoints.Checkpointer(
                self.directory, self.model, self.max_to_keep, self.is_chief,
                self.worker_index, extra=extra)
        return self._checkpointer

    def restore(self):
        """Restores the newest readable checkpoint into the model; returns its path or
        None. Call before `fit` (after `set_model`)."""
        path = self.checkpointer.restore_latest()
        self._saved_step = model_step(self.model) if path else None
        return path

    def save(self):
        """Writes a checkpoint at the current step (once per step); refuses a broken one."""
        step = model_step(self.model)
        if step == self._saved_step:
            return
        bad = self.checkpointer.non_finite_variables()
        if bad:
            raise NonFiniteError(f"not writing a checkpoint at step {step}: "
                                 f"{len(bad)} variables are NaN/Inf ({', '.join(bad[:3])})")
        try:
            self.checkpointer.save(step, step * self.batch_size)
        except (tf.errors.OpError, OSError) as e:
            reason = (getattr(e, "message", None) or str(e)).strip().splitlines()
            latest = tf.train.latest_checkpoint(self.directory)
            raise OSError(
                f"could not write the checkpoint of step {step} into {self.directory} "
                f"({reason[0] if reason else type(e).__name__}); "
                + (f"{latest} is intact" if latest else "no earlier checkpoint")
                + "; free space or fix the directory, then run the same command") from None
        self._saved_step = step

    def on_train_begin(self, logs=None):
        self._step = model_step(self.model)

    def on_train_batch_end(self, batch, logs=None):
        before, self._step = self._step, model_step(self.model)
        if crossed(before, self._step, self.every_n_steps):
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        self.save()

    def on_train_end(self, logs=None):
        self.save()


class GracefulStop(keras.callbacks.Callback):
    """On SIGTERM or SIGINT (preemption, Ctrl-C) during `fit`: finishes the step in
    flight, writes a checkpoint at it and stops training; `signum` says which signal
    came. A second signal of the same kind is handled as usual (Ctrl-C twice aborts).

    Args:
        checkpoint: the run's `Checkpoint` callback.
    """

    def __init__(self, checkpoint, signals=(signal.SIGTERM, signal.SIGINT)):
        super().__init__()
        self.checkpoint, self.signals = checkpoint, signals
        self.signum = None
        self._previous = {}

    def _handle(self, signum, frame):
        self.signum = signum
        signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))

    def on_train_begin(self, logs=None):
        if self._previous or threading.current_thread() is not threading.main_thread():
            return  # installed (an earlier fit raised), or not the main thread: Python
            # delivers signals to the main thread only
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._handle)

    def on_train_batch_end(self, batch, logs=None):
        if self.signum is not None:
            self.checkpoint.save()
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        for signum, handler in self._previous.items():
            if self.signum != signum:
                signal.signal(signum, handler)
        self._previous = {}


def set_learning_rate(gan, value):
    """Sets both optimizers' learning rate (inside a LossScaleOptimizer too)."""
    for optimizer in (gan.d_optimizer, gan.g_optimizer):
        getattr(optimizer, "inner_optimizer", optimizer).learning_rate.assign(value)


def learning_rate(gan):
    return float(getattr(gan.d_optimizer, "inner_optimizer", gan.d_optimizer).learning_rate)


def train_with_rollback(train, gan, checkpoint, on_nan="stop", max_rollbacks=3):
    """Calls `train()`; when it raises NonFiniteError and `on_nan` is "rollback", restores
    the last checkpoint, halves the learning rate and calls it again, at most
    `max_rollbacks` times.

    Args:
        train: () -> None, the run's `fit` calls from the model's current step on.
        gan: the model `train` trains (its optimizers' learning rate is halved).
        checkpoint: the run's `Checkpoint` callback (what a rollback restores).
        on_nan: "stop" (raise at once) or "rollback".
    Returns:
        The number of rollbacks made.
    Raises:
        NonFiniteError: with on_nan "stop", or after `max_rollbacks` rollbacks; the
            message says that no checkpoint of the broken state was written.
    """
    rollbacks = 0
    while True:
        try:
            train()
            return rollbacks
        except NonFiniteError as e:
            if on_nan != "rollback" or rollbacks >= max_rollbacks:
                raise NonFiniteError(
                    f"{e}; training stopped, no checkpoint of it was written"
                    + (f" (after {rollbacks} rollbacks)" if rollbacks else
                       "; --on_nan=rollback goes back to the last checkpoint with a lower "
                       "learning rate, or lower --learning_rate")) from None
            rollbacks += 1
            path = checkpoint.restore()
            set_learning_rate(gan, learning_rate(gan) * 0.5)
            logging.warning("rollback %d of %d: %s; back to %s (step %d) with learning "
                            "rate %g", rollbacks, max_rollbacks, e, path,
                            model_step(gan), learning_rate(gan))
