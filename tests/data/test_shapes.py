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
        shapes.scene_params = lambda i, s="train": dict(params, objects=[])
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
