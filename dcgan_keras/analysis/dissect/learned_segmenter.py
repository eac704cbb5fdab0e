"""A learned segmenter for the shapes datasets: a compact U-Net trained on rendered scenes.

GAN Dissection (Bau et al. 2018, section 3.1) labels generated images with a segmentation
network. On --dataset=shapes_random an object's colour says nothing about its kind, so the
colour rule (`shapes.segment`) cannot name circles, squares and triangles; this network
learns them from the shapes themselves, on scenes rendered with their exact masks.

The network (`build_segmenter`): a fully convolutional U-Net (Ronneberger et al. 2015).
Encoder blocks of 3x3 conv-BN-ReLU at 1, 1/2 and 1/4 of the image side, each followed by
2x2 max-pooling, a bottleneck at 1/8, and decoder blocks that upsample by 2 and
concatenate the encoder's block of the same size; a 1x1 conv gives K logits per pixel.
It takes [-1, 1] images of any side divisible by 8. The full-resolution blocks have one
narrow conv (they only need to place edges, which the flat colours make sharp; at 64x64
they are most of the cost), the lower ones two.

Training (`train`): Adam, a cosine-decayed learning rate, the mean per-pixel softmax
cross-entropy, unweighted, on batches rotated by k * 90 degrees and flipped at random (a
circle, square or triangle stays one). Scenes are rendered in NumPy, in memory: train
split scenes 0..n-1; test split scenes 0..m-1 are held out and scored (per-concept IoU,
logged) after every epoch. No class weights, although background is ~87% of the pixels
and triangles ~2.5%: weights move the loss's optimum away from the most likely label per
pixel, pushing the rare classes over their borders, and IoU charges false positives as
much as misses. Nor did the errors call for them: on shapes_random the background's
held-out IoU was 1.000 after the first epoch, and almost all the wrong pixels were one
object kind taken for another (mostly where objects overlap), which weighting the kinds
against the background does not address. The defaults were chosen on measurements
(2 CPU cores): the network underfits (train and held-out IoU equal within 0.005), so the
budget goes into steps; batch 16 beat 32 at the same number of scenes seen.

`train_and_save` writes workdir/segmenter/: a SavedModel that `segmenters.load` reads (a
`segment` function: images -> labels, and `probabilities`: images -> softmax, both for
float32 [-1, 1] images of any side divisible by 8; `probabilities` is differentiable),
concepts.txt, segmenter.json (settings, seconds, per-concept test IoU, pixel accuracy, the
per-epoch history) and segmenter_test.png (rows: held-out images, their true label maps,
the predicted ones, coloured by concept).
"""
import colorsys
import os
import time
import uuid

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from dcgan_keras.analysis import nethook, outputs
from dcgan_keras.analysis.dissect import segmenters
from dcgan_keras.data import datasets, shapes
from dcgan_keras.utils import files

# (filters, 3x3 convs) of the blocks at 1, 1/2, 1/4 and 1/8 (the bottleneck) of the side.
BLOCKS = ((8, 1), (16, 2), (32, 2), (64, 2))
DOWNSAMPLING = 2 ** (len(BLOCKS) - 1)
SEGMENTER_DIR = "segmenter"
INFO_FILE = "segmenter.json"
GRID_FILE = "segmenter_test.png"
GRID_SCENES = 8


def check_dataset(dataset):
    """The `colors` of a shapes dataset's scenes; refuses any other dataset."""
    if dataset not in datasets.SHAPES:
        raise ValueError(f"dataset must be one of {', '.join(datasets.SHAPES)} (the scenes "
                         f"with per-pixel labels a segmenter learns from), got {dataset!r}")
    return datasets.SHAPES[dataset]


def check_image_size(image_size):
    if image_size < 2 * DOWNSAMPLING or image_size % DOWNSAMPLING:
        raise ValueError(f"image_size must be a multiple of {DOWNSAMPLING} and >= "
                         f"{2 * DOWNSAMPLING} (the segmenter halves it "
                         f"{len(BLOCKS) - 1} times), got {image_size}")


def _block(x, filters, convs, name):
    for j in range(1, convs + 1):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                name=f"{name}_conv{j}")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn{j}")(x)
        x = keras.layers.ReLU(name=f"{name}_relu{j}")(x)
    return x


def build_segmenter(num_concepts, blocks=BLOCKS, name="segmenter"):
    """The U-Net: images [N, S, S, 3] in [-1, 1] -> logits [N, S, S, num_concepts].

    Args:
        num_concepts: K, the number of labels.
        blocks: (filters, convs) per level, full resolution first; the last is the
            bottleneck. S must be divisible by 2 ** (len(blocks) - 1).
    """
    inputs = keras.Input((None, None, 3), name="images")
    x, skips = inputs, []
    for level, (filters, convs) in enumerate(blocks[:-1], start=1):
        x = _block(x, filters, convs, f"down{level}")
        skips.append(x)
        x = keras.layers.MaxPooling2D(name=f"pool{level}")(x)
    x = _block(x, *blocks[-1], "bottleneck")
    for level in range(len(blocks) - 1, 0, -1):
        x = keras.layers.UpSampling2D(name=f"upsample{level}")(x)
        x = keras.layers.Concatenate(name=f"skip{level}")([x, skips[level - 1]])
        x = _block(x, *blocks[level - 1], f"up{level}")
    logits = keras.layers.Conv2D(num_concepts, 1, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name=name)


def to_float(images):
    """uint8 images -> float32 in [-1, 1]."""
    return np.asarray(images, np.float32) / 127.5 - 1.0


def predict(model, images, batch_size=250):
    """Label maps int32 [N, S, S] of images [N, S, S, 3] (uint8 or [-1, 1] floats)."""
    images = np.asarray(images)
    images = to_float(images) if images.dtype == np.uint8 else images
    call = tf.function(lambda x: tf.argmax(model(x, training=False), -1, output_type=tf.int32))
    return nethook.batched_call(call, images, batch_size).astype(np.int32)


def confusion_matrix(true, predicted, num_concepts):
    """counts [K, K] int64: [i, j] = the number of pixels of label i predicted as j."""
    index = np.asarray(true, np.int64).ravel() * num_concepts + np.asarray(predicted).ravel()
    return np.bincount(index, minlength=num_concepts ** 2).reshape(num_concepts, num_concepts)


def scores(true, predicted, concepts):
    """Per-concept IoU and pixel accuracy over all the pixels of label maps [N, H, W].

    IoU of concept k = |true == k and predicted == k| / |true == k or predicted == k|,
    None when neither map shows k.
    Returns:
        {"iou": {concept: IoU}, "pixel_accuracy": float}.
    """
    counts = confusion_matrix(true, predicted, len(concepts))
    hits = np.diag(counts)
    union = counts.sum(0) + counts.sum(1) - hits
    iou = {c: (float(hits[k] / union[k]) if union[k] else None)
           for k, c in enumerate(concepts)}
    return {"iou": iou, "pixel_accuracy": float(hits.sum() / counts.sum())}


def _format(result):
    return " ".join(f"{c} {v:.3f}" if v is not None else f"{c} -"
                    for c, v in result["iou"].items())


class HeldOutIoU(keras.callbacks.Callback):
    """Scores the model on held-out scenes after every epoch and logs one line.

    Adds test_pixel_accuracy and test_iou_<concept> to the epoch's logs; `history` keeps
    every epoch's loss, scores and seconds since the start of training.
    """

    def __init__(self, images, labels, concepts):
        super().__init__()
        self.images, self.labels, self.concepts = images, labels, tuple(concepts)
        self.history, self.start = [], None

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        result = scores(self.labels, predict(self.model, self.images), self.concepts)
        seconds = round(time.perf_counter() - self.start, 1)
        loss = float(logs["loss"]) if logs and "loss" in logs else float("nan")
        self.history.append(dict(epoch=epoch + 1, loss=loss, seconds=seconds, **result))
        if logs is not None:
            logs["test_pixel_accuracy"] = result["pixel_accuracy"]
            logs.update({f"test_iou_{c}": v for c, v in result["iou"].items() if v is not None})
        logging.info("epoch %d/%d: loss %.4f; held-out IoU %s; pixel accuracy %.4f (%.0f s)",
                     epoch + 1, self.params.get("epochs", 0), loss, _format(result),
                     result["pixel_accuracy"], seconds)


def _dihedral(images, labels):
    """One of the 8 rotations/reflections of the square, the same for a whole batch: a
    circle, square or triangle stays one (and pixel centres stay on the grid)."""
    k = tf.random.uniform([], 0, 4, tf.int32)
    flip = tf.random.uniform([]) < 0.5
    images, labels = tf.image.rot90(images, k), tf.image.rot90(labels[..., None], k)
    images = tf.cond(flip, lambda: tf.reverse(images, [2]), lambda: images)
    labels = tf.cond(flip, lambda: tf.reverse(labels, [2]), lambda: labels)
    return images, labels[..., 0]


def _train_dataset(images, labels, batch_size, seed, augment=True):
    """uint8 scenes -> shuffled batches of ([-1, 1] float images, labels)."""
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32) / 127.5 - 1.0, tf.cast(y, tf.int32)),
                num_parallel_calls=tf.data.AUTOTUNE)  # first: oneDNN has no uint8 transposes
    if augment:
        ds = ds.map(_dihedral, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def train(dataset, image_size=64, train_scenes=20_000, test_scenes=1000, epochs=4,
          batch_size=16, learning_rate=2e-3, seed=0, augment=True, blocks=BLOCKS):
    """Trains the segmenter on a shapes dataset's train scenes; scores it on test scenes.

    Args:
        dataset: "shapes" or "shapes_random" (datasets.SHAPES).
        image_size: scene side in pixels, a multiple of 8, >= 16.
        train_scenes: train on train-split scenes 0..train_scenes-1.
        test_scenes: score on test-split scenes 0..test_scenes-1 (after every epoch).
        epochs: passes over the train scenes.
        batch_size: scenes per step.
        learning_rate: Adam's initial rate, cosine-decayed to 1% of it at the end.
        seed: seeds the initialisation, the shuffling and the augmentation.
        augment: a random rotation by k * 90 degrees and flip of each training batch.
        blocks: the U-Net's (filters, convs) per level (`build_segmenter`).
    Returns:
        (model, info): the Keras model (logits) and a dict of the settings, the training
        seconds (of `fit`, held-out scoring included), the held-out scores ("test_iou",
        "test_pixel_accuracy") and the per-epoch "history".
    """
    colors = check_dataset(dataset)
    check_image_size(image_size)
    for name, value in (("train_scenes", train_scenes), ("test_scenes", test_scenes),
                        ("epochs", epochs), ("batch_size", batch_size)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if learning_rate <= 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    x_train, y_train = shapes.render_batch(range(train_scenes), image_size, "train", colors)
    x_test, y_test = shapes.render_batch(range(test_scenes), image_size, "test", colors)
    logging.info("rendered %d train and %d test %s scenes at %dx%d in %.0f s", train_scenes,
                 test_scenes, dataset, image_size, image_size, time.perf_counter() - start)
    model = build_segmenter(len(shapes.CONCEPTS), blocks)
    steps = epochs * -(-train_scenes // batch_size)
    model.compile(optimizer=keras.optimizers.Adam(
        keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.01)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    held_out = HeldOutIoU(x_test, y_test, shapes.CONCEPTS)
    start = time.perf_counter()
    model.fit(_train_dataset(x_train, y_train, batch_size, seed, augment), epochs=epochs,
              shuffle=False, verbose=0, callbacks=[held_out])
    final = held_out.history[-1]
    info = dict(dataset=dataset, image_size=image_size, train_scenes=train_scenes,
                test_scenes=test_scenes, epochs=epochs, batch_size=batch_size,
                learning_rate=learning_rate, seed=seed, augment=augment,
                blocks=[list(b) for b in blocks],
                params=model.count_params(), seconds=round(time.perf_counter() - start, 1),
                test_iou=final["iou"], test_pixel_accuracy=final["pixel_accuracy"],
                history=held_out.history)
    return model, info


def save(model, concepts, path):
    """Writes `model` (logits) as a SavedModel segmenter with `segment` and `probabilities`
    (see the module doc) and concepts.txt; returns `path`."""

    def segment(images):
        return tf.argmax(model(images, training=False), -1, output_type=tf.int32)

    def probabilities(images):
        return tf.nn.softmax(model(images, training=False), -1)

    return segmenters.save(segment, concepts, path, [None, None, 3],
                           probabilities=probabilities, track=model)


def colour_labels(labels, num_concepts):
    """Label maps [N, H, W] -> uint8 RGB [N, H, W, 3]: label 0 dark grey, the others at
    evenly spaced hues (on shapes: circle red, square green, triangle blue)."""
    palette = [(48, 48, 48)] + [
        tuple(round(255 * c) for c in colorsys.hsv_to_rgb(k / (num_concepts - 1), 1.0, 1.0))
        for k in range(num_concepts - 1)]
    return np.asarray(palette, np.uint8)[np.asarray(labels)]


def train_and_save(dataset, workdir, **kwargs):
    """`train(dataset, **kwargs)`, then writes workdir/segmenter/ (see the module doc),
    built under a temporary name and renamed into place.

    Returns:
        (model, info): those of `train`, info with "path": the directory to pass as
        --segmenter.
    """
    tf.io.gfile.makedirs(workdir)  # an unwritable workdir fails now, not after training
    model, info = train(dataset, **kwargs)
    final = os.path.join(workdir, SEGMENTER_DIR)
    tmp = f"{final}.tmp-{uuid.uuid4().hex[:12]}"
    save(model, shapes.CONCEPTS, tmp)
    images, labels = shapes.render_batch(range(GRID_SCENES), info["image_size"], "test",
                                         check_dataset(dataset))
    rows = [images, colour_labels(labels, len(shapes.CONCEPTS)),
            colour_labels(predict(model, images), len(shapes.CONCEPTS))]
    outputs.write_grid(tmp, GRID_FILE, np.concatenate(rows), cols=GRID_SCENES)
    info["path"] = final
    files.write_json(os.path.join(tmp, INFO_FILE), info)
    if tf.io.gfile.exists(final):
        tf.io.gfile.rmtree(final)
    tf.io.gfile.rename(tmp, final)
    logging.info("held-out IoU %s; pixel accuracy %.4f; saved %s", _format(
        {"iou": info["test_iou"]}), info["test_pixel_accuracy"], final)
    return model, info
