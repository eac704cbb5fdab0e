"""Checkpoints of a whole run: both nets, both optimizers, step, data position, RNG seed.

tf.train.CheckpointManager writes each checkpoint under a temporary name and only then
points the `checkpoint` state file (replaced atomically) at it, so a run killed during a
save still resumes from the previous complete checkpoint. If the newest listed checkpoint
is unreadable anyway (a damaged disk), restore falls back to the one before it.
"""
import os
import shutil

import tensorflow as tf
from absl import logging


class Checkpointer:
    """Saves and restores the training state of a DCGAN.

    Args:
        directory: where checkpoints go (workdir/checkpoints).
        gan: the compiled DCGAN (optimizers built).
        max_to_keep: how many of the latest checkpoints to keep.
        is_chief: non-chief workers of a multi-worker run save to a scratch directory
            (the save is collective) that is deleted right after.
        worker_index: used to name that scratch directory.
        extra: more trackables to save (e.g. an EMA generator), by name.
    """

    def __init__(self, directory, gan, max_to_keep=3, is_chief=True, worker_index=0,
                 extra=None):
        self.examples_seen = tf.Variable(0, dtype=tf.int64, trainable=False,
                                         name="examples_seen")
        self.rng_seed = tf.Variable(gan.seed, dtype=tf.int64, trainable=False, name="rng_seed")
        self.checkpoint = tf.train.Checkpoint(
            generator=gan.generator, discriminator=gan.discriminator,
            g_optimizer=gan.g_optimizer, d_optimizer=gan.d_optimizer,
            step=gan.step, examples_seen=self.examples_seen, rng_seed=self.rng_seed,
            **(extra or {}))
        self.is_chief = is_chief
        self.directory = directory if is_chief else os.path.join(
            os.path.dirname(directory), f".worker{worker_index}_checkpoints")
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory,
                                                  max_to_keep=max_to_keep)

    def restore_latest(self):
        """Restores the newest readable checkpoint; returns its path or None."""
        for path in reversed(self.manager.checkpoints):
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
                return path
            except (tf.errors.OpError, AssertionError, ValueError, IndexError) as e:
                logging.warning("checkpoint %s is unreadable (%s); trying an older one",
                                path, str(e).splitlines()[0][:200])
        return None

    def save(self, step, examples_seen):
        """Writes a checkpoint numbered by `step`; returns its path (chief only)."""
        self.examples_seen.assign(examples_seen)
        path = self.manager.save(checkpoint_number=step)
        if not self.is_chief:
            shutil.rmtree(self.directory, ignore_errors=True)
            return None
        return path


def resolve_checkpoint(workdir, checkpoint="latest"):
    """Path prefix of a workdir's checkpoint: "latest", "best" or an explicit path."""
    if checkpoint in ("latest", "best"):
        directory = os.path.join(workdir, "checkpoints" if checkpoint == "latest"
                                 else "best_checkpoint")
        path = tf.train.latest_checkpoint(directory)
        if path is None:
            raise FileNotFoundError(f"no {checkpoint} checkpoint in {directory}; train first "
                                    "(python -m dcgan_keras.binaries.train --workdir=...)"
                                    + (" with --eval_every_epochs" if checkpoint == "best"
                                       else ""))
        return path
    if not tf.io.gfile.exists(checkpoint + ".index"):
        raise FileNotFoundError(f"checkpoint {checkpoint!r} not found (expected "
                                f"{checkpoint}.index); pass latest, best or a ckpt-N prefix")
    return checkpoint


def restore_models(workdir, checkpoint="latest", generator_key="generator"):
    """Rebuilds G and D from workdir/config.json and restores their weights.

    Args:
        workdir: a training workdir.
        checkpoint: "latest", "best" or a checkpoint path prefix.
        generator_key: "generator", or "ema_generator" for the EMA weights.
    Returns:
        (generator, discriminator, step, config).
    """
    from dcgan_keras import config as config_lib  # avoid a cycle at import time
    from dcgan_keras.models import Discriminator, Generator

    config = config_lib.load(workdir)
    path = resolve_checkpoint(workdir, checkpoint)
    generator = Generator(image_size=config.image_size, channels=config.channels,
                          z_dim=config.z_dim, base_width=config.base_width)
    discriminator = Discriminator(image_size=config.image_size, channels=config.channels,
                                  base_width=config.d_base_width or config.base_width)
    step = tf.Variable(0, dtype=tf.int64)
    ckpt = tf.train.Checkpoint(**{generator_key: generator}, discriminator=discriminator,
                               step=step)
    ckpt.restore(path).expect_partial().assert_existing_objects_matched()
    return generator, discriminator, int(step.numpy()), config
