"""Exports a trained DCGAN for services that have TensorFlow but not dcgan_keras.

An export directory holds:

    generator/                 SavedModel: serving_default, generate_uint8, sample
    discriminator/             SavedModel: features, serving_default
    generator.tflite           float32 TFLite generator (serving_default)
    generator_float16.tflite   float16 weights
    generator_int8.tflite      dynamic-range int8 weights
    metadata.json              shapes, value range, feature size, training step, dataset,
                               versions, and the sha256 of every other file

The export is built in a local directory first. A local export_dir gets it by a rename
of the whole directory, so a reader never sees a half-written export; another file system
TensorFlow knows (gs://, hdfs://, ram://) gets it file by file through tf.io.gfile, each
file atomically, with metadata.json removed first and written last, so an export without
metadata.json is an incomplete one. Re-exporting replaces a previous export (one that has
a metadata.json) but never a directory of other files.
"""
import datetime
import hashlib
import json
import os
import shutil
import tempfile

import keras
import tensorflow as tf

import dcgan_keras
from dcgan_keras import workdir as workdir_lib
from dcgan_keras.models import features as features_lib, latent
from dcgan_keras.exporters import saved_model, tflite
from dcgan_keras.utils import files as files_lib
# An export's metadata.json and default place are read in workdir.py; export_lib names them
# too, beside the writer.
from dcgan_keras.workdir import METADATA, default_export_dir, load_metadata

FORMAT_VERSION = 1


def _is_local(path):
    return "://" not in str(path)


def sha256(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def file_checksums(directory):
    """{relative path: {"sha256", "bytes"}} of every file under directory but metadata.json."""
    return {rel: {"sha256": sha256(path), "bytes": tf.io.gfile.stat(path).length}
            for rel, path in _walk_files(directory) if rel != METADATA}


def _walk_files(directory):
    """(path relative to directory, full path) of every file under it, sorted."""
    directory = str(directory).rstrip("/")
    found = []
    for root, _, names in tf.io.gfile.walk(directory):
        for name in names:
            path = root.rstrip("/") + "/" + name
            # exists: ram:// lists "generator.tflite" inside "generator/" as ".tflite".
            if tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path):
                found.append((path[len(directory) + 1:], path))
    return sorted(found)


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
        "z_distribution": latent.of(generator),
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
    gfile = tf.io.gfile
    if gfile.exists(export_dir) and not gfile.isdir(export_dir):
        raise FileExistsError(f"{export_dir} is a file; --export_dir must be a directory")
    if gfile.isdir(export_dir) and gfile.listdir(export_dir) and not gfile.exists(
            export_dir.rstrip("/") + "/" + METADATA):
        raise FileExistsError(f"{export_dir} exists and is not a dcgan_keras export (no "
                              f"{METADATA}); choose another --export_dir or empty it")


def _publish_remote(local_dir, export_dir):
    """Copies a finished local export to another file system, metadata.json last."""
    gfile = tf.io.gfile
    export_dir = export_dir.rstrip("/")
    if gfile.exists(export_dir + "/" + METADATA):
        gfile.remove(export_dir + "/" + METADATA)  # from now on: an incomplete export
    new = set()
    for root, _, names in os.walk(local_dir):
        for name in names:
            rel = os.path.relpath(os.path.join(root, name), local_dir).replace(os.sep, "/")
            if rel != METADATA:
                new.add(rel)
                with open(os.path.join(root, name), "rb") as f:
                    files_lib.write_bytes(f"{export_dir}/{rel}", f.read())
    for rel, path in _walk_files(export_dir):
        if rel not in new:
            gfile.remove(path)  # a file of the previous export
    with open(os.path.join(local_dir, METADATA), "rb") as f:
        files_lib.write_bytes(f"{export_dir}/{METADATA}", f.read())


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
    local = _is_local(export_dir)
    export_dir = os.path.abspath(export_dir) if local else str(export_dir)
    _check_replaceable(export_dir)
    if local:  # next to export_dir, so that the final rename stays on one file system
        tmp = export_dir + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
    else:
        tmp = tempfile.mkdtemp(prefix="dcgan_keras_export_")
    generator_dir = saved_model.export_generator(generator, os.path.join(tmp, "generator"))
    saved_model.export_discriminator(discriminator, os.path.join(tmp, "discriminator"))
    tflite_paths = tflite.export_tflite(generator_dir, tmp, quantizations)
    metadata = _metadata(generator, discriminator, step, dataset, preprocess, checkpoint,
                         tflite_paths, tmp)
    with open(os.path.join(tmp, METADATA), "w") as f:
        json.dump(metadata, f, indent=2, sort_keys=True)
    if not local:
        try:
            _publish_remote(tmp, export_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return metadata
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
    generator, discriminator, step, config = workdir_lib.restore_models(
        workdir, checkpoint, generator_key)
    path = workdir_lib.resolve_checkpoint(workdir, checkpoint)
    return export_models(generator, discriminator, export_dir or default_export_dir(workdir),
                         step=step, dataset=config.dataset, preprocess=config.preprocess,
                         checkpoint=os.path.abspath(path) if _is_local(path) else path,
                         quantizations=quantizations)


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
