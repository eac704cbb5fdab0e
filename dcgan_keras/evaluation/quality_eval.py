"""The fid / kid / is / pr evaluators: sample quality of a generator, or of any image set.

Fake images come from `--images` (a folder, .npy or .npz of images), else from the
workdir's checkpoint (`--checkpoint`, `--generator=ema` for the EMA weights), else from an
export's SavedModel. Real images come from `--reference_images`, else from the dataset's
`--reference_split` (features cached, see sample_quality).
"""
import os

import numpy as np
import tensorflow as tf

from dcgan_keras import config as config_lib
from dcgan_keras import workdir as workdir_lib
from dcgan_keras.data import folder, pipeline
from dcgan_keras.evaluation import feature_nets, sample_quality
from dcgan_keras.models import latent

TITLES = {"fid": "FID", "kid": "KID", "kid_std": "KID std", "is": "IS", "is_std": "IS std",
          "precision": "precision", "recall": "recall"}


def load_images(path, image_size, channels, max_examples=None):
    """Images in [-1, 1] from a folder of image files, a .npy array or an .npz ("images").

    Arrays may be uint8 [0, 255] or float [-1, 1], shaped [N, H, W] or [N, H, W, C].
    """
    if os.path.isdir(path):
        source = folder.folder_source(path)
        images, _ = pipeline.load_numpy(source, image_size, channels,
                                        max_examples=max_examples)
        return images
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path!r} is neither a folder of images nor a .npy/.npz file")
    if path.endswith(".npz"):
        with np.load(path) as data:
            if "images" not in data:
                raise ValueError(f"{path} has no 'images' array (it has {list(data)})")
            images = data["images"]
    else:
        images = np.load(path)
        if images.dtype.names and "images" in images.dtype.names:  # the sample binary's .npy
            images = images["images"]
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"{path} holds an array of shape {images.shape}; expected images "
                         "[N, H, W] or [N, H, W, 1 or 3]")
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 127.5 - 1.0
    elif images.min() < -1.01 or images.max() > 1.01:
        raise ValueError(f"{path}: float images must be in [-1, 1], found "
                         f"[{images.min():.3f}, {images.max():.3f}]")
    return images[:max_examples].astype(np.float32)


def _trained_with(context):
    """(dataset, image_size, channels, preprocess, data_dir) of the model evaluated."""
    if workdir_lib.is_training_workdir(context.workdir):
        c = config_lib.load(context.workdir)
        return c.dataset, c.image_size, c.channels, c.preprocess, c.data_dir
    if not (context.workdir or context.export_dir):  # scoring image files only
        return "", None, None, "crop_resize", ""
    export_dir = context.resolved_export_dir()
    if workdir_lib.is_export(export_dir):
        meta = workdir_lib.load_metadata(export_dir)
        shape = meta.get("image_shape") or [None, None, None]
        return (meta.get("dataset", ""), shape[0], shape[-1],
                meta.get("preprocess", "crop_resize"), "")
    return "", None, None, "crop_resize", ""


def _generate_from_export(export_dir, num, seed, batch_size):
    generator = tf.saved_model.load(os.path.join(export_dir, "generator"))
    serve = generator.signatures["serving_default"]
    z_dim = serve.structured_input_signature[1]["z"].shape[-1]
    z = latent.numpy(np.random.default_rng(seed), (num, z_dim),
                     workdir_lib.export_z_distribution(export_dir))
    return np.concatenate([serve(z=tf.constant(z[i:i + batch_size]))["images"].numpy()
                           for i in range(0, num, batch_size)])


def generated_images(context, num_samples, generator, batch_size):
    """Samples of the workdir's checkpoint, else of the export's SavedModel."""
    if workdir_lib.is_training_workdir(context.workdir):
        key = "ema_generator" if generator == "ema" else "generator"
        g, _, _, _ = workdir_lib.restore_models(context.workdir, context.checkpoint,
                                                generator_key=key)
        return sample_quality.generate(g, num_samples, context.seed, batch_size)
    return _generate_from_export(context.resolved_export_dir(), num_samples, context.seed,
                                 batch_size)


def evaluate(context, metrics="fid,kid,is,pr", feature_net="inception", num_samples=10000,
             reference_split="test", images="", reference_images="", inception_weights="",
             generator="generator", batch_size=500):
    """Scores fake images against real ones; returns the numbers and a summary table."""
    which = [m for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m]
    if generator not in ("generator", "ema"):
        raise ValueError(f"generator must be 'generator' or 'ema', got {generator!r}")
    net = feature_nets.load(feature_net, inception_weights or None)
    dataset, size, channels, preprocess, train_data_dir = _trained_with(context)
    trained_dataset = dataset
    size, channels = size or net.image_size, channels or net.channels
    if images:
        fake = load_images(images, size, channels, num_samples)
    else:
        fake = generated_images(context, num_samples, generator, batch_size)
    fake_features, fake_probs = net(fake, batch_size)
    if reference_images:
        real_features, _ = net(load_images(reference_images, size, channels), batch_size)
        reference = reference_images
    else:
        dataset = context.dataset or dataset
        if not dataset:
            raise ValueError("no reference: pass --reference_images=PATH or --dataset=NAME")
        data_dir = context.data_dir or (train_data_dir if dataset == trained_dataset else "")
        real_features = sample_quality.reference_features(
            net, dataset, reference_split, size, channels, preprocess, num_samples,
            data_dir or None, context.allow_download)
        reference = f"{dataset}/{reference_split}"
    scores = sample_quality.score(fake_features, real_features, fake_probs, which,
                                  seed=context.seed)
    rows = [f"{TITLES[k]:>10}  {v:.4f}" for k, v in scores.items()]
    summary = (f"{len(fake)} generated vs {len(real_features)} real ({reference}), "
               f"features: {net.name}\n" + "\n".join(rows))
    return dict(scores, num_fake=len(fake), num_real=len(real_features), reference=reference,
                feature_net=net.name, summary=summary)
