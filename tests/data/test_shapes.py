"""The shapes dataset: seeded scenes, masks that cover exactly each object's pixels, an
exact colour-rule segmenter, and a Source that trains at any image_size."""
import numpy as np
import pytest

from dcgan_keras.data import datasets, pipeline, shapes


def _background_only(index, size, split="train"):
    """The scene's background alone (the same gradient, no objects)."""
    params = shapes.scene_params(index, split)
    original = shapes.scene_params
    try:
        shapes.scene_params = lambda *args: dict(params, objects=[])
        return shapes.render(index, size, split)[0]
    finally:
        shapes.scene_params = original


@pytest.mark.parametrize("size", [16, 32, 64])
def test_masks_cover_exactly_the_pixels_of_each_object(size):
    for index in range(40):
        image, labels = shapes.render(index, size)
        objects = shapes.scene_params(index)["objects"]
        background = _background_only(index, size)
        # Object pixels are exactly those that differ from the bare background...
        np.testing.assert_array_equal(np.any(image != background, axis=-1), labels > 0)
        # ...and each shows the colour of the topmost object of its kind covering it.
        x, y = np.meshgrid((np.arange(size) + 0.5) / size, (np.arange(size) + 0.5) / size)
        expected = np.zeros([size, size], np.uint8)
        colour = background.copy()
        for obj in objects:
            inside = shapes._inside(obj["kind"], obj["radius"], obj["center"], obj["angle"], x, y)
            expected[inside] = obj["kind"] + 1
            colour[inside] = np.round(obj["rgb"] * 255).astype(np.uint8)
        np.testing.assert_array_equal(labels, expected)
        np.testing.assert_array_equal(image, colour)


def test_geometry_of_each_kind():
    size = 64
    x, y = np.meshgrid((np.arange(size) + 0.5) / size, (np.arange(size) + 0.5) / size)
    areas = [shapes._inside(k, 0.2, (0.5, 0.5), 0.3, x, y).mean() for k in range(3)]
    # circle pi r^2, square 2 r^2 (circumradius r), equilateral triangle 3 sqrt(3)/4 r^2
    np.testing.assert_allclose(areas, [np.pi * 0.04, 2 * 0.04, 3 * np.sqrt(3) / 4 * 0.04],
                               rtol=0.06)


def test_the_segmenter_is_exact_on_the_dataset_and_reads_float_images():
    for split in ("train", "test"):
        for size in (16, 32):
            batch = [shapes.render(i, size, split) for i in range(100)]
            images = np.stack([b[0] for b in batch])
            labels = np.stack([b[1] for b in batch])
            np.testing.assert_array_equal(shapes.segment(images), labels)
            np.testing.assert_array_equal(shapes.segment(images / 127.5 - 1.0), labels)
    assert {int(v) for v in labels.reshape(-1)} == {0, 1, 2, 3}
    share = shapes.pixel_share(labels, "square")
    assert share == pytest.approx(np.mean(labels == 2))
    with pytest.raises(ValueError, match="RGB"):
        shapes.segment(np.zeros([2, 8, 8, 1], np.uint8))


def test_scenes_are_seeded_and_splits_differ():
    a, la = shapes.render(7, 32)
    b, lb = shapes.render(7, 32)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    assert not np.array_equal(a, shapes.render(7, 32, "test")[0])
    assert not np.array_equal(a, shapes.render(8, 32)[0])


def test_source_renders_at_the_training_size_without_resampling():
    assert "shapes" in datasets.DATASET_NAMES
    source = datasets.get_source("shapes", "train")
    assert source.num_examples == shapes.SPLIT_SIZES["train"] and source.num_classes is None
    for size in (16, 32):
        images, labels = pipeline.load_numpy(source, size, 3, max_examples=5)
        expected = np.stack([shapes.render(i, size)[0] for i in range(5)])
        np.testing.assert_allclose((images + 1.0) * 127.5, expected, atol=1e-3)
        assert (labels == -1).all()
    gray, _ = pipeline.load_numpy(source, 16, 1, max_examples=2)
    assert gray.shape == (2, 16, 16, 1)
    batch = next(iter(pipeline.train_dataset(source, 16, 3, 8, seed=1)))
    assert batch.shape == (8, 16, 16, 3)


def _object_hues(images, labels):
    """Each object pixel's hue in degrees [0, 360) and its kind (1..3)."""
    rgb = images[labels > 0].astype(np.float64) / 255.0
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    hue = np.degrees(np.arctan2(np.sqrt(3.0) * (g - b), 2 * r - g - b)) % 360.0
    return hue, labels[labels > 0]


def test_random_colours_keep_the_geometry_and_make_colour_say_nothing_of_kind():
    family = [shapes.render(i, 32) for i in range(300)]
    random = [shapes.render(i, 32, colors="random") for i in range(300)]
    for (_, lf), (image, lr) in zip(family, random):
        np.testing.assert_array_equal(lf, lr)  # the same shapes, other colours
    images, labels = np.stack([r[0] for r in random]), np.stack([r[1] for r in random])
    hue, kind = _object_hues(images, labels)
    for k in (1, 2, 3):
        # Every kind's hues cover the circle: each 60-degree sextant holds some of them.
        counts = np.bincount((hue[kind == k] // 60).astype(int), minlength=6)
        assert (counts > 0.05 * counts.sum()).all(), (k, counts)
    # The colour rule still separates objects from the background...
    predicted = shapes.segment(images)
    np.testing.assert_array_equal(predicted > 0, labels > 0)
    # ...but its kinds are near chance (1/3) on random colours, exact on the families.
    accuracy = np.mean(predicted[labels > 0] == labels[labels > 0])
    assert 0.2 < accuracy < 0.5, accuracy
    with pytest.raises(ValueError, match="shapes_colors must be one of family, random"):
        shapes.render(0, 16, colors="rainbow")


def test_shapes_random_is_a_dataset_of_its_own():
    source = datasets.get_source("shapes_random", "test")
    assert source.name == "shapes_random" and source.num_examples == shapes.SPLIT_SIZES["test"]
    images, _ = pipeline.load_numpy(source, 16, 3, max_examples=4)
    expected = np.stack([shapes.render(i, 16, "test", "random")[0] for i in range(4)])
    np.testing.assert_allclose((images + 1.0) * 127.5, expected, atol=1e-3)
    batch, labels = shapes.render_batch(range(4), 16, "test", "random")
    np.testing.assert_array_equal(batch, expected)
    assert labels.shape == (4, 16, 16)
