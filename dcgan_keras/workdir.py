"""A training workdir and an export directory, read: the one module that loads them.

    workdir/config.json          the run's TrainConfig (config.py)
    workdir/checkpoints/ckpt-N   the rolling checkpoints (training/checkpoints.py writes them)
    workdir/best_checkpoint/     the lowest-FID checkpoint (with --eval_every_epochs)
    workdir/export/              the default export directory
    export_dir/metadata.json     an export's shapes and provenance (exporters/export_lib.py)
    export_dir/generator/, discriminator/   its SavedModels

Everything that reads trained networks (export, sample, evaluate, analyze) loads them
here: `resolve_checkpoint` finds a checkpoint, `restore_models` rebuilds G and D from
config.json and restores them, `load_metadata` reads an export's metadata.json,
`load_networks` gives either as `Networks` (Keras models, also rebuilt from an export),
and `weights_fingerprint` names a set of weights. Training writes these files; this
module imports nothing of training (training may import it), so readers never depend on
the trainer.
"""
import dataclasses
import hashlib
import os

import numpy as np
import tensorflow as tf

from dcgan_keras import config as config_lib
from dcgan_keras.models import Discriminator, Generator, latent
from dcgan_keras.utils import files

METADATA = "metadata.json"  # an export's; written last, so an export without it is incomplete
CHECKPOINT_DIRS = {"latest": "checkpoints", "best": "best_checkpoint"}


class CheckpointMismatchError(ValueError):
    """A workdir's checkpoints cannot be restored into the model these flags build (a
    resumed run, training/checkpoints.py) or that its config.json describes (a reader,
    `restore_models`)."""


def first_line(error):
    """The first line of an exception's message (at most 200 characters)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


def default_export_dir(workdir):
    """Where a workdir's export goes unless told otherwise: workdir/export."""
    return os.path.join(workdir, "export")


def is_training_workdir(path):
    """Whether `path` holds a training run's config.json."""
    return bool(path) and files.exists(config_lib.config_path(path))


def is_export(path):
    """Whether `path` holds a complete export (its metadata.json)."""
    return bool(path) and tf.io.gfile.exists(str(path).rstrip("/") + "/" + METADATA)


def resolve_checkpoint(workdir, checkpoint="latest"):
    """Path prefix of a workdir's checkpoint: "latest", "best" or an explicit path."""
    if checkpoint in CHECKPOINT_DIRS:
        directory = os.path.join(workdir, CHECKPOINT_DIRS[checkpoint])
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
    config = config_lib.load(workdir)
    path = resolve_checkpoint(workdir, checkpoint)
    generator = Generator(image_size=config.image_size, channels=config.channels,
                          z_dim=config.z_dim, base_width=config.base_width,
                          z_distribution=config.z_distribution)
    discriminator = Discriminator(image_size=config.image_size, channels=config.channels,
                                  base_width=config.d_base_width or config.base_width)
    step = tf.Variable(0, dtype=tf.int64)
    ckpt = tf.train.Checkpoint(**{generator_key: generator}, discriminator=discriminator,
                               step=step)
    try:
        ckpt.restore(path).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise CheckpointMismatchError(
            f"{path} does not fit the model described by {workdir}/config.json "
            f"({first_line(e)}): the checkpoints and config.json come from different "
            "runs, or the checkpoint is damaged") from None
    return generator, discriminator, int(step.numpy()), config


def load_metadata(export_dir):
    """The metadata.json of an export directory."""
    path = str(export_dir).rstrip("/") + "/" + METADATA
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path} does not exist: {export_dir!r} is not an export "
                                "directory (python -m dcgan_keras.binaries.export --workdir=W)")
    return files.read_json(path)


def export_z_distribution(export_dir, meta=None):
    """The prior of z an export's generator was trained on (its metadata.json's
    z_distribution; an export from before it was recorded, or one without metadata, was
    trained on N(0, 1))."""
    if meta is None:
        try:
            meta = load_metadata(export_dir)
        except FileNotFoundError:
            return latent.LEGACY
    return meta.get("z_distribution", latent.LEGACY)


def weights_fingerprint(*models):
    """SHA-256 (16 hex digits) of the models' weights (shapes, dtypes, values), in order.

    Replicas of a synchronous run must hold bit-identical weights (every worker of a
    multi-worker run logs this at the end); a dissection records its generator's, so that
    paint can tell whether a dissection is of the model it serves.
    """
    digest = hashlib.sha256()
    for model in models:
        for weight in model.weights:
            value = weight.numpy()
            digest.update(f"{value.dtype}{value.shape}".encode())
            digest.update(value.tobytes())
    return digest.hexdigest()[:16]


@dataclasses.dataclass
class Networks:
    """Trained G and D as Keras models, with what their readers need to know of the data.

    Attributes:
        workdir: the training workdir they came from ("" for an export).
    """
    generator: Generator
    discriminator: Discriminator
    step: int
    dataset: str
    data_dir: str = ""
    preprocess: str = "crop_resize"
    workdir: str = ""


def networks_from_workdir(workdir, checkpoint="latest", generator_key="generator"):
    """Networks from a training workdir's checkpoint (FileNotFoundError if it has none)."""
    if not is_training_workdir(workdir):
        raise FileNotFoundError(f"{workdir} has no config.json: not a training workdir "
                                "(python -m dcgan_keras.binaries.train --workdir=...)")
    generator, discriminator, step, config = restore_models(workdir, checkpoint, generator_key)
    return Networks(generator, discriminator, step, config.dataset, config.data_dir,
                    config.preprocess, workdir)


def _copy_variables(saved_model_dir, model):
    """Assigns the variables of a SavedModel to `model`'s variables of equal name."""
    loaded = tf.saved_model.load(saved_model_dir)
    by_name = {v.name.split(":")[0]: v for v in loaded.variables}
    for variable in model.variables:
        source = by_name.get(variable.path)
        if source is None or tuple(source.shape) != tuple(variable.shape):
            raise ValueError(f"{saved_model_dir} has no variable {variable.path} of shape "
                             f"{tuple(variable.shape)}: the export does not match its "
                             "metadata.json")
        variable.assign(source.numpy())
    return loaded


def networks_from_export(export_dir):
    """Networks rebuilt from an export directory.

    Analysis reads and edits hidden layers and takes gradients through them, which a
    SavedModel's signatures do not allow; so the export's networks are rebuilt as
    `Generator` and `Discriminator` from its metadata.json and given the SavedModel's
    variables (matched by name and shape), and the rebuilt G is checked against the
    export's own signature.
    """
    meta = load_metadata(export_dir)
    size, _, channels = meta["image_shape"]
    generator = Generator(image_size=size, channels=channels, z_dim=meta["z_dim"],
                          base_width=meta["generator_base_width"],
                          z_distribution=export_z_distribution(export_dir, meta))
    discriminator = Discriminator(image_size=size, channels=channels,
                                  base_width=meta["discriminator_base_width"])
    loaded = _copy_variables(os.path.join(export_dir, "generator"), generator)
    _copy_variables(os.path.join(export_dir, "discriminator"), discriminator)
    z = latent.stateless([4, generator.z_dim], [0, 0], generator.z_distribution)
    expected = loaded.signatures["serving_default"](z=z)["images"]
    if not np.allclose(generator(z, training=False), expected, atol=1e-4):
        raise ValueError(f"the generator rebuilt from {export_dir} does not reproduce the "
                         "export's images; re-export with this version of dcgan_keras")
    return Networks(generator, discriminator, meta.get("training_step", 0),
                    meta.get("dataset", ""), "", meta.get("preprocess") or "crop_resize")


def load_networks(workdir=None, export_dir=None, checkpoint="latest",
                  generator_key="generator"):
    """Networks from exactly one of a workdir or an export directory."""
    if bool(workdir) == bool(export_dir):
        raise ValueError("pass exactly one of a workdir or an export directory")
    if workdir:
        return networks_from_workdir(workdir, checkpoint, generator_key)
    return networks_from_export(export_dir)
