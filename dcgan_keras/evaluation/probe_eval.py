"""The `svm_probe` evaluator: the paper's representation probe of an exported D.

Radford et al. 2016, sections 5.1-5.2: D's conv features (all layers, max-pooled to 4x4,
concatenated) feed a regularised linear L2-SVM trained on few labels; C is chosen on
held-out training images; the result is test accuracy, mean +- 1.96 sigma over random
draws of the labelled subset. The DCGAN features are read through the exported
`features` signature, so the artefact that ships is the one measured. On the same draws
(svm_probe.run_probe) three baselines:
    raw_pixels: the image itself;
    kmeans:     single-layer K-means features (Coates, Lee & Ng 2011), fit on the
                unlabelled training images;
    random_d:   a freshly initialised D of the same architecture, same feature code;
and a supervised one (supervised_cnn.run_on_draws, the paper's table 2 comparison):
    supervised_cnn: D's architecture with a softmax head, trained from scratch on each
                draw's labelled images, its hyperparameters chosen by a random search of
                `trials` trials on the same validation images.
"""
import os

import numpy as np
from absl import logging

from dcgan_keras import config as config_lib
from dcgan_keras import workdir as workdir_lib
from dcgan_keras.data import datasets, pipeline
from dcgan_keras.models import features as features_lib
from dcgan_keras.evaluation import supervised_cnn, svm_probe
from dcgan_keras.evaluation.kmeans_features import KMeansFeatures

BASELINES = ("raw_pixels", "kmeans", "random_d", supervised_cnn.NAME)
# The supervised CNN trains `trials` CNNs on every draw (4-8 min a draw at the paper's 64
# trials on 2 cores, where the other baselines together take under a minute): asked for
# by name, e.g. --baselines=raw_pixels,kmeans,random_d,supervised_cnn.
DEFAULT_BASELINES = ("raw_pixels", "kmeans", "random_d")


def _training_config(workdir):
    if not workdir:
        return None
    return config_lib.load(workdir)


def load_split(dataset, split, data_dir, image_size, channels, preprocess, allow_download,
               max_examples=0):
    """(images float32 [N, S, S, C] in [-1, 1], labels int64 [N]) of a labelled split."""
    source = datasets.get_source(dataset, split, data_dir or None, allow_download)
    if not source.num_classes:
        raise ValueError(f"the SVM probe needs labels, and dataset {dataset!r} has none; "
                         "pass a labelled --dataset (cifar10, svhn, mnist, fashion_mnist, "
                         "or a folder with one subfolder per class)")
    return pipeline.load_numpy(source, image_size, channels, preprocess,
                               max_examples=max_examples or None)


def evaluate(context, labels_per_class=100, val_size=10000, draws=10,
             c_grid=svm_probe.DEFAULT_C_GRID, baselines=DEFAULT_BASELINES,
             kmeans_centroids=1600,
             kmeans_patches=400_000, max_train_examples=0, max_test_examples=0,
             svm_solver="newton", feature_scaling="standard", batch_size=500,
             trials=supervised_cnn.DEFAULT_TRIALS, early_stopping_images=0):
    """Runs the probe on an export; returns a JSON-serialisable dict with a "summary" table.

    Args:
        context: a registry.EvalContext (export dir, dataset, data dir, seed).
        labels_per_class: labelled training images per class (100: 1000 labels).
        val_size: held-out training images that choose C.
        draws: random draws of the labelled subset (the same for every method).
        c_grid: candidate C values of the LinearSVC.
        baselines: any of BASELINES, in table order after "dcgan".
        kmeans_centroids: K of the K-means baseline (4K features).
        kmeans_patches: patches drawn to fit the K-means dictionary.
        max_train_examples, max_test_examples: use only the first N images (0: all).
        svm_solver: "newton" (exact, fast) or "liblinear" (see svm_probe.run_probe).
        feature_scaling: "standard" or "none" (see svm_probe.run_probe).
        batch_size: images per feature call.
        trials: random-search trials per draw of the supervised CNN (64 in the paper).
        early_stopping_images: > 0: the supervised CNN's early stopping watches this many
            of the validation images (its trials are still ranked on all of them).
    """
    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; choose from {', '.join(BASELINES)}")
    supervised_cnn.check_options(trials, early_stopping_images)
    export_dir = context.resolved_export_dir()
    meta = workdir_lib.load_metadata(export_dir)
    size, _, channels = meta["image_shape"]
    train_config = _training_config(context.workdir)
    dataset = context.dataset or meta["dataset"]
    if not dataset:
        raise ValueError("the export does not record its dataset; pass --dataset")
    data_dir = context.data_dir
    if not data_dir and train_config and train_config.dataset == dataset:
        data_dir = train_config.data_dir  # the run's own copy of its data
    preprocess = meta.get("preprocess") or "crop_resize"

    train_images, train_labels = load_split(dataset, "train", data_dir, size, channels,
                                            preprocess, context.allow_download,
                                            max_train_examples)
    test_images, test_labels = load_split(dataset, "test", data_dir, size, channels,
                                          preprocess, context.allow_download,
                                          max_test_examples)
    logging.info("svm_probe: %s, %d train / %d test images at %dx%dx%d", dataset,
                 len(train_images), len(test_images), size, size, channels)

    dcgan_fn, _ = features_lib.saved_model_feature_fn(export_dir, batch_size)
    feature_fns = {"dcgan": dcgan_fn}
    for name in baselines:
        if name == "raw_pixels":
            feature_fns[name] = svm_probe.raw_pixels
        elif name == "kmeans":
            kmeans = KMeansFeatures(num_centroids=kmeans_centroids,
                                    num_patches=kmeans_patches, seed=context.seed)
            feature_fns[name] = kmeans.fit(train_images)  # unlabelled images only
        elif name == "random_d":
            feature_fns[name] = features_lib.random_discriminator_feature_fn(
                size, channels, meta["discriminator_base_width"], seed=context.seed,
                batch_size=batch_size)

    result = svm_probe.run_probe(feature_fns, train_images, train_labels, test_images,
                                 test_labels, labels_per_class=labels_per_class,
                                 val_size=val_size, draws=draws, c_grid=c_grid,
                                 seed=context.seed, batch_size=batch_size,
                                 solver=svm_solver, scaling=feature_scaling)
    if supervised_cnn.NAME in baselines:  # not a feature function: trained on each draw
        result.methods[supervised_cnn.NAME] = supervised_cnn.run_on_draws(
            result.draws, train_images, train_labels, test_images, test_labels,
            base_width=meta["discriminator_base_width"], trials=trials, seed=context.seed,
            early_stopping_images=early_stopping_images, eval_batch_size=batch_size)
        result.methods = {name: result.methods[name]
                          for name in ["dcgan", *baselines] if name in result.methods}
        result.config.update(trials=trials, early_stopping_images=early_stopping_images)
    output = svm_probe.result_to_json(result)
    summary = svm_probe.format_table(result)
    if supervised_cnn.NAME in result.methods:
        summary += "\n" + supervised_cnn.describe(result.methods[supervised_cnn.NAME])
    output.update(
        summary=summary,
        dataset=dataset, export_dir=os.path.abspath(export_dir),
        training_step=meta["training_step"], image_shape=meta["image_shape"],
        train_examples=int(len(train_images)), test_examples=int(len(test_images)),
        kmeans_centroids=kmeans_centroids if "kmeans" in baselines else None,
        classes=int(np.unique(train_labels).size))
    return output
