"""Exports a trained DCGAN for services that have TensorFlow but not dcgan_keras.

An export directory holds:

    generator/                 SavedModel: serving_default, generate_uint8, sample
    discriminator/             SavedModel: features, serving_default
    generator.tflite           float32 TFLite generator (serving_default)
    generator_float16.tflite   float16 weights
    generator_int8.tflite      dynamic-range int8 weights
    metadata.json              shapes, value range, feature size, training step, dataset,
                               versions, and the sha256 of every other file

The directory is written under a temporary name and renamed into place, so a reader never
sees a half-written export; re-exporting replaces a previous export (one that has a
metadata.json) but never a directory of other files.
"""
import datetime
import hashlib
import json
import os
import shutil

import keras
import tensorflow as tf

import dcgan_keras
from dcgan_keras.models import features as features_lib
from dcgan_keras.exporters import saved_model, tflite

METADATA = "metadata.json"
FORMAT_VERSION = 1


def sha256(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def file_checksums(directory):
    """{relative path: {"sha256", "bytes"}} of every file under directory but metadata.json."""
    files = {}
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, directory).replace(os.sep, "/")
            if rel != METADATA:
                files[rel] = {"sha256": sha256(path), "bytes": os.path.getsize(path)}
    return files


def _metadata(generator, discriminator, step, dataset, preprocess, checkpoint, tflite_paths,
              directory):
    size, channels = generator.image_size, generator.channels
    return {
        "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "package": "dcgan_keras",
        "package_version": dcgan_keras.__version__,
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "z_dim": generator.z_dim,
        "image_shape": [size, size, channels],
        "image_value_range": [-1.0, 1.0],
        "uint8_value_range": [0, 255],
        "generator_base_width": generator.base_width,
        "discriminator_base_width": discriminator.base_width,
        "feature_size": features_lib.feature_size(size, discriminator.base_width),
        "feature_layers": list(discriminator.feature_layer_names),
        "feature_grid": features_lib.GRID,
        "training_step": int(step),
        "dataset": dataset,
        "preprocess": preprocess,
        "checkpoint": checkpoint,
        "signatures": {"generator": list(saved_model.GENERATOR_SIGNATURES),
                       "discriminator": list(saved_model.DISCRIMINATOR_SIGNATURES)},
        "tflite": {q: os.path.basename(p) for q, p in tflite_paths.items()},
        "files": file_checksums(directory),
    }


def _check_replaceable(export_dir):
    if os.path.isdir(export_dir) and os.listdir(export_dir) and not os.path.exists(
            os.path.join(export_dir, METADATA)):
        raise FileExistsError(f"{export_dir} exists and is not a dcgan_keras export (no "
                              f"{METADATA}); choose another --export_dir or empty it")
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        raise FileExistsError(f"{export_dir} is a file; --export_dir must be a directory")


def export_models(generator, discriminator, export_dir, step=0, dataset="", preprocess="",
                  checkpoint="", quantizations=tflite.QUANTIZATIONS):
    """Writes SavedModels, TFLite generators and metadata.json into export_dir.

    Args:
        generator: a `Generator`.
        discriminator: a `Discriminator` of the same image size and channels.
        export_dir: output directory (created; a previous export there is replaced).
        step, dataset, preprocess, checkpoint: provenance written to metadata.json.
        quantizations: TFLite variants to write (a subset of tflite.QUANTIZATIONS).
    Returns:
        The metadata dict (also written to export_dir/metadata.json).
    """
    if (generator.image_size, generator.channels) != (discriminator.image_size,
                                                      discriminator.channels):
        raise ValueError(f"generator makes {generator.image_size}x{generator.image_size}x"
                         f"{generator.channels} images but the discriminator reads "
                         f"{discriminator.image_size}x{discriminator.image_size}x"
                         f"{discriminator.channels}")
    export_dir = os.path.abspath(export_dir)
    _check_replaceable(export_dir)
    tmp = export_dir + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    generator_dir = saved_model.export_generator(generator, os.path.join(tmp, "generator"))
    saved_model.export_discriminator(discriminator, os.path.join(tmp, "discriminator"))
    tflite_paths = tflite.export_tflite(generator_dir, tmp, quantizations)
    metadata = _metadata(generator, discriminator, step, dataset, preprocess, checkpoint,
                         tflite_paths, tmp)
    with open(os.path.join(tmp, METADATA), "w") as f:
        json.dump(metadata, f, indent=2, sort_keys=True)
    old = export_dir + ".old"
    if os.path.exists(export_dir):
        shutil.rmtree(old, ignore_errors=True)
        os.replace(export_dir, old)
    os.replace(tmp, export_dir)
    shutil.rmtree(old, ignore_errors=True)
    return metadata


def export_from_workdir(workdir, export_dir=None, checkpoint="latest",
                        generator_key="generator", quantizations=tflite.QUANTIZATIONS):
    """Restores a training workdir's checkpoint and exports it.

    Args:
        workdir: a training workdir (config.json + checkpoints/).
        export_dir: output directory (default: workdir/export).
        checkpoint: "latest", "best" or a checkpoint path prefix.
        generator_key: "generator", or "ema_generator" for a run's EMA weights.
        quantizations: TFLite variants to write.
    Returns:
        The metadata dict.
    """
    from dcgan_keras.training import checkpoints  # noqa: PLC0415 (keeps imports light)
    generator, discriminator, step, config = checkpoints.restore_models(
        workdir, checkpoint, generator_key)
    path = checkpoints.resolve_checkpoint(workdir, checkpoint)
    return export_models(generator, discriminator, export_dir or default_export_dir(workdir),
                         step=step, dataset=config.dataset, preprocess=config.preprocess,
                         checkpoint=os.path.abspath(path), quantizations=quantizations)


def default_export_dir(workdir):
    return os.path.join(workdir, "export")


def load_metadata(export_dir):
    """The metadata.json of an export directory."""
    path = os.path.join(export_dir, METADATA)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist: {export_dir!r} is not an export "
                                "directory (python -m dcgan_keras.binaries.export --workdir=W)")
    with open(path) as f:
        return json.load(f)


def verify(export_dir):
    """Checks every file of an export against metadata.json.

    Returns:
        A list of problems ("generator.tflite: sha256 differs", ...); empty if intact.
    """
    expected = load_metadata(export_dir)["files"]
    actual = file_checksums(export_dir)
    problems = [f"{p}: missing" for p in sorted(set(expected) - set(actual))]
    problems += [f"{p}: not in {METADATA}" for p in sorted(set(actual) - set(expected))]
    problems += [f"{p}: sha256 differs" for p in sorted(set(expected) & set(actual))
                 if expected[p]["sha256"] != actual[p]["sha256"]]
    return problems
