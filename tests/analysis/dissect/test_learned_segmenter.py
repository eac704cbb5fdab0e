"""The learned segmenter: a few steps learn the scenes, its scores match NumPy, its
SavedModel loads through `segmenters.load` with the same labels and a differentiable
`probabilities`, and bad settings are refused. (The binary: tests/binaries/.)"""
import json

import numpy as np
import pytest
import tensorflow as tf

from dcgan_keras.analysis.dissect import learned_segmenter, segmenters
from dcgan_keras.data import shapes
from dcgan_keras.utils import images as images_lib

SIZE = 16
TEST_SCENES = 32


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model, info, workdir) of 4 epochs on 64 scenes of 16x16 --dataset=shapes (12 s)."""
    workdir = str(tmp_path_factory.mktemp("segmenter"))
    model, info = learned_segmenter.train_and_save(
        "shapes", workdir, image_size=SIZE, train_scenes=64, test_scenes=TEST_SCENES,
        epochs=4, batch_size=16, learning_rate=1e-2)
    return model, info, workdir


def test_a_few_steps_learn_the_scenes(trained):
    _, info, _ = trained
    losses = [epoch["loss"] for epoch in info["history"]]
    assert len(losses) == 4 and losses[-1] < 0.6 * losses[0], losses
    # Baseline: calling every pixel background scores its share in pixel accuracy and 0
    # IoU on every object kind.
    _, labels = shapes.render_batch(range(TEST_SCENES), SIZE, "test")
    background_share = np.mean(labels == 0)
    assert info["test_pixel_accuracy"] > background_share + 0.03, info
    objects = [info["test_iou"][kind] for kind in shapes.KINDS]
    assert np.mean(objects) > 0.3 and info["test_iou"]["background"] > 0.85, info
    assert info["history"][-1]["iou"] == info["test_iou"]


def test_scores_are_iou_and_accuracy_over_all_pixels():
    true = np.array([[[0, 0, 1], [1, 2, 2]], [[0, 1, 1], [2, 2, 0]]])
    predicted = np.array([[[0, 1, 1], [1, 2, 0]], [[0, 1, 2], [2, 2, 0]]])
    concepts = ("background", "a", "b", "never")
    result = learned_segmenter.scores(true, predicted, concepts)
    # By hand: background 4 true, 4 predicted, 3 both -> 3 / 5; a: 4 true, 4 predicted,
    # 3 both -> 3 / 5; b: 4 true, 4 predicted, 3 both -> 3 / 5; 9 of 12 pixels right.
    for k, concept in enumerate(concepts[:3]):
        both = np.sum((true == k) & (predicted == k))
        either = np.sum((true == k) | (predicted == k))
        assert both / either == pytest.approx(0.6)
        assert result["iou"][concept] == pytest.approx(both / either)
    assert result["iou"]["never"] is None
    assert result["pixel_accuracy"] == pytest.approx(9 / 12)


def test_saved_model_loads_with_the_same_labels_and_probabilities(trained):
    model, info, workdir = trained
    path = info["path"]
    assert path == f"{workdir}/segmenter"
    seg = segmenters.load(path)
    assert seg.concepts == shapes.CONCEPTS and seg.input_dtype == "float"
    # Fully convolutional: also at a side it was not trained at (24, a multiple of 8).
    for size in (SIZE, 24):
        images, _ = shapes.render_batch(range(6), size, "test")
        floats = images.astype(np.float32) / 127.5 - 1.0
        expected = np.argmax(model(floats, training=False).numpy(), -1)
        np.testing.assert_array_equal(seg(floats), expected)
        np.testing.assert_array_equal(seg(images), expected)  # uint8 in, converted
        probabilities = seg.probabilities(floats).numpy()
        assert probabilities.shape == (6, size, size, len(shapes.CONCEPTS))
        assert probabilities.dtype == np.float32 and probabilities.min() >= 0
        np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(np.argmax(probabilities, -1), seg(floats))
    assert seg.probabilities is not None and segmenters.load("shapes").probabilities is None


def test_probabilities_are_differentiable_after_loading(trained):
    seg = segmenters.load(trained[1]["path"])
    images, _ = shapes.render_batch(range(4), SIZE, "test")
    x = tf.constant(images.astype(np.float32) / 127.5 - 1.0)
    circle = shapes.CONCEPTS.index("circle")

    def circle_mass(x):
        return tf.reduce_sum(seg.probabilities(x)[..., circle])

    with tf.GradientTape() as tape:
        tape.watch(x)
        before = circle_mass(x)
    gradient = tape.gradient(before, x)
    assert gradient is not None and gradient.shape == x.shape
    gradient = gradient.numpy()
    assert np.all(np.isfinite(gradient)) and np.abs(gradient).max() > 1e-6
    # A small step up the gradient raises the circle probability: it is the real gradient.
    assert float(circle_mass(x + 1e-3 * np.sign(gradient))) > float(before)


def test_the_workdir_has_the_json_and_the_grid(trained):
    _, info, workdir = trained
    with open(f"{workdir}/segmenter/{learned_segmenter.INFO_FILE}") as f:
        saved = json.load(f)
    assert saved["dataset"] == "shapes" and saved["image_size"] == SIZE
    assert saved["train_scenes"] == 64 and saved["epochs"] == 4 and saved["seconds"] > 0
    assert saved["test_iou"] == info["test_iou"]
    assert saved["test_pixel_accuracy"] == pytest.approx(info["test_pixel_accuracy"])
    with open(f"{workdir}/segmenter/{segmenters.CONCEPTS_FILE}") as f:
        assert f.read().split() == list(shapes.CONCEPTS)
    grid = images_lib.read_png(f"{workdir}/segmenter/{learned_segmenter.GRID_FILE}")
    n, pad, tile = learned_segmenter.GRID_SCENES, 2, SIZE + 2
    assert grid.shape == (3 * tile + pad, n * tile + pad, 3)
    images, labels = shapes.render_batch(range(n), SIZE, "test")
    tiles = [grid[pad + row * tile:pad + row * tile + SIZE, pad + i * tile:pad + i * tile + SIZE]
             for row in range(3) for i in range(n)]
    np.testing.assert_array_equal(tiles[:n], images)  # the first row: the scenes
    truth = np.stack(tiles[n:2 * n])  # the second: their label maps, coloured
    assert np.all(truth[labels == 0] == (48, 48, 48))  # background dark grey
    assert np.sum(labels == 1) > 0 and np.all(truth[labels == 1] == (255, 0, 0))  # circles red
    predicted = segmenters.load(info["path"])(images)  # the third: the predicted ones
    assert np.all(np.stack(tiles[2 * n:])[predicted == 0] == (48, 48, 48))
    assert np.all(np.stack(tiles[2 * n:])[predicted == 1] == (255, 0, 0))


def test_augmentation_turns_images_and_labels_together():
    # On "family" scenes the colour rule gives the labels from the pixels alone, so a
    # transformed batch must still be labelled by it.
    images, _ = shapes.render_batch(range(4), SIZE, "train")
    images = images.astype(np.float32) / 127.5 - 1.0
    labels = shapes.segment(images).astype(np.int32)
    tf.random.set_seed(0)
    seen = set()
    for _ in range(48):
        x, y = learned_segmenter._dihedral(tf.constant(images), tf.constant(labels))
        x, y = x.numpy(), y.numpy()
        np.testing.assert_array_equal(shapes.segment(x), y)
        assert sorted(x.ravel()) == sorted(images.ravel())  # the same pixels, moved
        seen.add(y.tobytes())
    assert len(seen) == 8  # all 8 symmetries of the square occur


def test_the_network_is_compact_and_fully_convolutional():
    model = learned_segmenter.build_segmenter(4)
    assert 100_000 <= model.count_params() <= 300_000
    for size in (16, 40):
        assert model(np.zeros([1, size, size, 3], np.float32)).shape == (1, size, size, 4)
    names = {layer.name for layer in model.layers}
    assert {"down1_relu1", "bottleneck_relu2", "up1_relu1", "logits"} <= names


@pytest.mark.parametrize("settings,message", [
    (dict(dataset="fashion_mnist"), "dataset must be one of shapes, shapes_random .*got "
                                    "'fashion_mnist'"),
    (dict(image_size=20), "image_size must be a multiple of 8 and >= 16.* got 20"),
    (dict(image_size=8), "image_size must be a multiple of 8 and >= 16.* got 8"),
    (dict(train_scenes=0), "train_scenes must be >= 1, got 0"),
    (dict(epochs=0), "epochs must be >= 1, got 0"),
    (dict(learning_rate=-1.0), "learning_rate must be > 0"),
])
def test_bad_settings_are_refused_before_any_work(settings, message, monkeypatch):
    monkeypatch.setattr(shapes, "render_batch", None)  # would fail if anything rendered
    settings = dict(dict(dataset="shapes_random", image_size=16), **settings)
    with pytest.raises(ValueError, match=message):
        learned_segmenter.train(**settings)
