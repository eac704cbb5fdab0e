"""Checkpoints of a whole run: both nets, both optimizers, step, data position, RNG seed.

tf.train.CheckpointManager writes each checkpoint under a temporary name and only then
points the `checkpoint` state file (replaced atomically) at it, so a run killed during a
save still resumes from the previous complete checkpoint. If the newest listed checkpoint
is unreadable anyway (a damaged disk), restore falls back to the one before it.
"""
import os
import shutil
import tempfile
import uuid

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from dcgan_keras.utils import files
from dcgan_keras.workdir import CheckpointMismatchError, first_line  # resume raises it too


# Keys of the object graph and counters that every checkpoint has, whatever it holds.
_BOOKKEEPING = ("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/")


def checkpoint_reader(path):
    """A reader of the checkpoint whose path prefix is `path` (tf.train.load_checkpoint).

    load_checkpoint reads a directory's latest checkpoint instead when tf.io.gfile calls
    its argument a directory, and TensorFlow's in-memory file system (ram://, the tests'
    stand-in for gs://) calls every prefix of a file name a directory; there the prefix is
    given to the reader that load_checkpoint itself calls (a test fails when TensorFlow
    changes this).
    """
    if tf.io.gfile.isdir(path):
        return tf.compat.v1.train.NewCheckpointReader(path)
    return tf.train.load_checkpoint(path)


def _variable_shapes(path):
    reader = checkpoint_reader(path)
    return {k: tuple(v) for k, v in reader.get_variable_to_shape_map().items()
            if not k.startswith(_BOOKKEEPING)}


def _differences(expected, found, limit=4):
    """Human-readable differences between two {key: shape} maps (at most `limit` each)."""
    def short(key):
        return key.replace("/.ATTRIBUTES/VARIABLE_VALUE", "")

    def listing(keys):
        keys = sorted(keys)
        more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
        return ", ".join(short(k) for k in keys[:limit]) + more

    problems = []
    missing, extra = set(expected) - set(found), set(found) - set(expected)
    if missing:
        problems.append(f"{len(missing)} variables these flags need are not in it: "
                        + listing(missing))
    if extra:
        problems.append(f"{len(extra)} variables in it are not in this model: "
                        + listing(extra))
    shapes = [k for k in set(expected) & set(found) if expected[k] != found[k]]
    if shapes:
        problems.append("shapes differ: " + ", ".join(
            f"{short(k)} {found[k]} in it, {expected[k]} here" for k in sorted(shapes)[:limit]))
    return problems


def _hint(problems):
    text = " ".join(problems)
    hints = []
    if "ema_generator" in text:
        hints.append("--ema_decay on or off as it was")
    if "loss_scale" in text or "inner_optimizer" in text:
        hints.append("--mixed_precision as it was (float16 adds loss scaling)")
    return f" ({'; '.join(hints)})" if hints else ""


def worker_scratch_dir(worker_index):
    """A fresh local directory for a non-chief worker's share of a collective save."""
    return tempfile.mkdtemp(prefix=f"dcgan_worker{worker_index}_checkpoint_")


class Checkpointer:
    """Saves and restores the training state of a DCGAN.

    Args:
        directory: where checkpoints go (workdir/checkpoints).
        gan: the compiled DCGAN (optimizers built).
        max_to_keep: how many of the latest checkpoints to keep.
        is_chief: non-chief workers of a multi-worker run save to a local scratch
            directory (the save is collective: every worker must call it) that is deleted
            right after, so only the chief writes into `directory`. Every worker restores
            from `directory` (the workdir must be on a file system all workers can read).
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
        self.directory = directory
        self.restore_manager = tf.train.CheckpointManager(self.checkpoint, directory,
                                                          max_to_keep=max_to_keep)
        self.manager = self.restore_manager if is_chief else tf.train.CheckpointManager(
            self.checkpoint, worker_scratch_dir(worker_index), max_to_keep=max_to_keep)

    def expected_variables(self):
        """{checkpoint key: shape} of what this Checkpointer saves (written once to
        TensorFlow's in-memory file system and read back)."""
        prefix = f"ram://dcgan_keras_expected/{uuid.uuid4().hex}/ckpt"
        path = self.checkpoint.write(prefix)
        try:
            return _variable_shapes(path)
        finally:
            for name in tf.io.gfile.glob(prefix + "*"):
                tf.io.gfile.remove(name)

    def restore_latest(self):
        """Restores the newest readable checkpoint; returns its path, or None when there is
        none.

        A damaged checkpoint (a file that cannot be read) falls back to the one before it,
        loudly. A checkpoint of another structure (other nets, optimizers, EMA, loss
        scaling) is never skipped: that raises CheckpointMismatchError naming the
        differences, as does a directory whose every checkpoint is damaged, so that a new
        run never overwrites the checkpoints of one it did not restore.
        """
        paths = list(self.restore_manager.checkpoints)
        damaged = []
        expected = None
        for path in reversed(paths):
            try:
                found = _variable_shapes(path)
            except (tf.errors.OpError, ValueError) as e:
                damaged.append((path, first_line(e)))
                continue
            expected = expected or self.expected_variables()
            problems = _differences(expected, found)
            if problems:
                raise CheckpointMismatchError(
                    f"{path} was written by a run with a different model or training set-up "
                    f"than these flags build ({'; '.join(problems)}). It is not skipped or "
                    "overwritten: resume with the flags it was trained with (they are in "
                    f"the workdir's config.json){_hint(problems)}, or train in a new --workdir.")
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
            except (tf.errors.OpError, AssertionError, ValueError, IndexError) as e:
                # (a truncated data file: "IndexError: Read less bytes than requested")
                damaged.append((path, first_line(e)))
                continue
            for bad, why in damaged:
                logging.warning("checkpoint %s is damaged (%s)", bad, why)
            if damaged:
                logging.warning("resumed from the older %s: the steps after it are trained "
                                "again", path)
            return path
        if damaged:
            raise CheckpointMismatchError(
                f"every checkpoint in {self.directory} is unreadable ("
                + "; ".join(f"{os.path.basename(p)}: {why}" for p, why in damaged)
                + "). Nothing was overwritten: move that directory away to start the run "
                "over, or restore it from a copy.")
        return None

    def non_finite_variables(self):
        """Names of the float variables this checkpoint writes that hold a NaN or Inf.

        Every variable it saves, not only the trainable ones: BatchNorm statistics, the EMA
        generator, optimizer slots and the extras (E-GAN's other parents and their
        optimizers), each named by its checkpoint entry, e.g. "ema_generator/block1_bn/
        moving_variance".
        """
        bad, seen = [], set()
        # An optimizer also reaches the variables it trains: visit the networks first, so
        # that a weight is named by its network and only slots by their optimizer.
        entries = sorted(tf.train.TrackableView.children(self.checkpoint).items(),
                         key=lambda entry: isinstance(entry[1], keras.optimizers.Optimizer))
        for name, child in entries:
            for obj in tf.train.TrackableView(child).descendants():
                if id(obj) in seen or not isinstance(obj, (keras.Variable, tf.Variable)):
                    continue
                seen.add(id(obj))
                if "float" in str(obj.dtype) and not np.isfinite(
                        np.asarray(obj.numpy(), np.float32)).all():
                    bad.append(f"{name}/{obj.path}" if isinstance(obj, keras.Variable)
                               else name)
        return bad

    def save(self, step, examples_seen):
        """Writes a checkpoint numbered by `step`; returns its path (chief only)."""
        self.examples_seen.assign(examples_seen)
        path = self.manager.save(checkpoint_number=step)
        if not self.is_chief:
            shutil.rmtree(self.manager.directory, ignore_errors=True)
            return None
        return path


class BestKeeper:
    """Keeps the checkpoint with the lowest FID in workdir/best_checkpoint (+ best.json).

    DCGANs can collapse late in training, so the best checkpoint is kept apart from the
    rolling latest ones. The best score survives restarts (read back from best.json).
    """

    def __init__(self, workdir, checkpointer, is_chief=True):
        self.path = os.path.join(workdir, "best.json")
        self.checkpointer = checkpointer
        self.is_chief = is_chief
        # Non-chief workers take part in the collective save in a local scratch directory.
        directory = (os.path.join(workdir, "best_checkpoint") if is_chief
                     else tempfile.mkdtemp(prefix="dcgan_worker_best_checkpoint_"))
        self.manager = tf.train.CheckpointManager(checkpointer.checkpoint, directory,
                                                  max_to_keep=1)
        self.best = None
        if files.exists(self.path):
            self.best = files.read_json(self.path)

    def update(self, fid, step, examples_seen, scores=None):
        """Saves a best checkpoint if `fid` is lower than any before; returns True if so."""
        if self.best is not None and fid >= self.best["fid"]:
            return False
        self.checkpointer.examples_seen.assign(examples_seen)
        self.manager.save(checkpoint_number=step)
        self.best = dict(scores or {}, fid=float(fid), step=int(step))
        if self.is_chief:
            files.write_json(self.path, self.best)
        else:
            shutil.rmtree(self.manager.directory, ignore_errors=True)
        return True
