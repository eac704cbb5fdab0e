"""A small CNN classifier whose penultimate layer is the feature space of FID on small,
labelled datasets (as TF-GAN does for MNIST): Fashion-MNIST, MNIST, SVHN, CIFAR-10
become measurable without downloading InceptionV3.
"""
import os
import time

import keras
from absl import logging

from dcgan_keras.data import datasets, pipeline
from dcgan_keras.evaluation import feature_nets
from dcgan_keras.utils import files


def build_classifier(image_size, channels, num_classes, width=32, feature_dim=128):
    """conv-BN-ReLU x2 + max-pool at three widths, flatten, a 128-d "features"
    layer, dropout and a softmax "probabilities" layer."""
    inputs = keras.Input((image_size, image_size, channels), name="images")
    x = inputs
    for i, filters in enumerate((width, 2 * width, 4 * width), start=1):
        for j in (1, 2):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                    name=f"block{i}_conv{j}")(x)
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"block{i}_bn{j}")(x)
            x = keras.layers.ReLU(name=f"block{i}_relu{j}")(x)
        x = keras.layers.MaxPooling2D(name=f"block{i}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(feature_dim, activation="relu", name="features")(x)
    x = keras.layers.Dropout(0.3, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32",
                                 name="probabilities")(x)
    return keras.Model(inputs, outputs, name="domain_classifier")


def train_classifier(dataset, workdir, image_size=32, channels=1, epochs=5, batch_size=128,
                     data_dir=None, preprocess="crop_resize", allow_download=True, seed=0,
                     max_examples=None):
    """Trains the classifier on the train split, measures it on the test split, saves both.

    Writes workdir/classifier.keras and workdir/classifier.json ({"test_accuracy", ...}).
    Returns:
        the info dict.
    """
    keras.utils.set_random_seed(seed)
    train_source = datasets.get_source(dataset, "train", data_dir, allow_download)
    test_source = datasets.get_source(dataset, "test", data_dir, allow_download)
    if not train_source.num_classes:
        raise ValueError(f"dataset {dataset!r} has no labels; the classifier needs a "
                         "labelled dataset (mnist, fashion_mnist, svhn, cifar10, a folder "
                         "with one subfolder per class)")
    args = dict(image_size=image_size, channels=channels, preprocess_mode=preprocess)
    x_train, y_train = pipeline.load_numpy(train_source, max_examples=max_examples, **args)
    x_test, y_test = pipeline.load_numpy(test_source, max_examples=max_examples, **args)
    model = build_classifier(image_size, channels, train_source.num_classes)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=2,
              validation_data=(x_test, y_test))
    _, accuracy = model.evaluate(x_test, y_test, batch_size=500, verbose=0)
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, feature_nets.CLASSIFIER_FILE)
    model.save(path + ".tmp.keras")
    os.replace(path + ".tmp.keras", path)
    info = dict(dataset=dataset, image_size=image_size, channels=channels,
                preprocess=preprocess, epochs=epochs, train_examples=len(x_train),
                test_examples=len(x_test), test_accuracy=float(accuracy),
                train_seconds=round(time.perf_counter() - start, 1))
    files.write_json(os.path.join(workdir, feature_nets.CLASSIFIER_INFO), info)
    logging.info("classifier test accuracy %.4f on %d %s test images; saved %s",
                 accuracy, len(x_test), dataset, path)
    return info
