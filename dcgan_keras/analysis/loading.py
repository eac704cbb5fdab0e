"""The trained networks of a workdir or an export directory, as Keras models.

Analysis reads and edits hidden layers and takes gradients through them, which a
SavedModel's signatures do not allow; so an export's networks are rebuilt as `Generator`
and `Discriminator` from its metadata.json and given the SavedModel's variables (matched
by name and shape), and the rebuilt G is checked against the export's own signature.
"""
import dataclasses
import os

import numpy as np
import tensorflow as tf

from dcgan_keras.models import Discriminator, Generator


@dataclasses.dataclass
class Networks:
    """Trained G and D with what analysis needs to know about their data."""
    generator: Generator
    discriminator: Discriminator
    step: int
    dataset: str
    data_dir: str = ""
    preprocess: str = "crop_resize"


def from_workdir(workdir, checkpoint="latest", generator_key="generator"):
    """Networks from a training workdir's checkpoint (FileNotFoundError if it has none)."""
    from dcgan_keras.training import checkpoints  # noqa: PLC0415 (keeps imports light)
    if not tf.io.gfile.exists(os.path.join(workdir, "config.json")):
        raise FileNotFoundError(f"{workdir} has no config.json: not a training workdir "
                                "(python -m dcgan_keras.binaries.train --workdir=...)")
    generator, discriminator, step, config = checkpoints.restore_models(
        workdir, checkpoint, generator_key)
    return Networks(generator, discriminator, step, config.dataset, config.data_dir,
                    config.preprocess)


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


def from_export(export_dir):
    """Networks rebuilt from an export directory (see `dcgan_keras.exporters`)."""
    from dcgan_keras.exporters import export_lib  # noqa: PLC0415
    meta = export_lib.load_metadata(export_dir)
    size, _, channels = meta["image_shape"]
    generator = Generator(image_size=size, channels=channels, z_dim=meta["z_dim"],
                          base_width=meta["generator_base_width"])
    discriminator = Discriminator(image_size=size, channels=channels,
                                  base_width=meta["discriminator_base_width"])
    loaded = _copy_variables(os.path.join(export_dir, "generator"), generator)
    _copy_variables(os.path.join(export_dir, "discriminator"), discriminator)
    z = tf.random.stateless_normal([4, generator.z_dim], seed=[0, 0])
    expected = loaded.signatures["serving_default"](z=z)["images"]
    if not np.allclose(generator(z, training=False), expected, atol=1e-4):
        raise ValueError(f"the generator rebuilt from {export_dir} does not reproduce the "
                         "export's images; re-export with this version of dcgan_keras")
    return Networks(generator, discriminator, meta.get("training_step", 0),
                    meta.get("dataset", ""), "", meta.get("preprocess") or "crop_resize")


def load(workdir=None, export_dir=None, checkpoint="latest", generator_key="generator"):
    """Networks from exactly one of a workdir or an export directory."""
    if bool(workdir) == bool(export_dir):
        raise ValueError("pass exactly one of a workdir or an export directory")
    if workdir:
        return from_workdir(workdir, checkpoint, generator_key)
    return from_export(export_dir)
