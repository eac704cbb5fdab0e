"""Segmenter plug-ins: the built-in one, a module:function callable and a SavedModel made
from that callable load through one interface and give the same dissection."""
import json
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from test_dissection import _toy_generator, _z

from dcgan_keras.analysis.dissect import dissection, segmenters
from dcgan_keras.data import shapes

# A user's segmenter: TensorFlow ops, so the same function also becomes a SavedModel.
PLUGIN = textwrap.dedent('''
    import tensorflow as tf
    CONCEPTS = ("other", "reddish")

    def segment(images):
        """[-1, 1] images -> 1 where red leads green and blue by 0.5, else 0."""
        images = tf.convert_to_tensor(images, tf.float32)
        r, g, b = images[..., 0], images[..., 1], images[..., 2]
        return tf.cast((r - tf.maximum(g, b)) > 0.5, tf.int32)
''')


@pytest.fixture()
def plugin(tmp_path, monkeypatch):
    (tmp_path / "my_segmenter.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return segmenters.load("my_segmenter:segment")


def test_builtin_segmenter_is_the_shapes_rule():
    image, labels = shapes.render(3, 16)
    seg = segmenters.load("shapes")
    assert seg.concepts == shapes.CONCEPTS
    np.testing.assert_array_equal(seg(image[None]), labels[None])  # uint8 in
    np.testing.assert_array_equal(seg(image[None] / 127.5 - 1.0), labels[None])  # [-1, 1] in


def test_saved_model_gives_the_same_dissection_as_its_callable(plugin, tmp_path):
    import my_segmenter  # noqa: PLC0415 (on the path through the fixture)
    assert plugin.concepts == ("other", "reddish")
    path = segmenters.save(my_segmenter.segment, my_segmenter.CONCEPTS,
                           str(tmp_path / "seg_model"), [16, 16, 3])
    saved = segmenters.load(path)
    assert saved.concepts == plugin.concepts and saved.input_dtype == "float"
    g, z = _toy_generator(), _z(30)
    results = [dissection.run(g, seg, str(tmp_path / name), z, ["feat"], q=0.05, num_units=2,
                              num_examples=2, ignore=("other",), intervene_z=_z(8, 1))
               for name, seg in (("callable", plugin), ("saved", saved))]
    assert results[0]["concept_share"]["reddish"] > 0.01
    assert json.dumps(results[0]) == json.dumps(results[1])


def test_a_callable_brings_its_probabilities(tmp_path, monkeypatch, plugin):
    (tmp_path / "soft_segmenter.py").write_text(textwrap.dedent('''
        import tensorflow as tf
        CONCEPTS = ("dark", "bright")

        def probabilities(images):
            bright = tf.sigmoid(10.0 * tf.reduce_mean(images, -1))
            return tf.stack([1.0 - bright, bright], -1)

        def segment(images):
            return tf.argmax(probabilities(images), -1)

        segment.probabilities = probabilities
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    seg = segmenters.load("soft_segmenter:segment")
    images = np.stack([np.full([4, 4, 3], -0.5, np.float32), np.full([4, 4, 3], 0.5)])
    np.testing.assert_array_equal(seg(images)[:, 0, 0], [0, 1])
    np.testing.assert_allclose(seg.probabilities(images)[:, 0, 0, 1],
                               1 / (1 + np.exp([5.0, -5.0])), rtol=1e-5)
    assert plugin.probabilities is None  # it has none
    assert segmenters.load("shapes").probabilities is None


def test_uint8_saved_model_gets_uint8(tmp_path):
    path = segmenters.save(lambda images: tf.cast(images[..., 0] > 127, tf.int32), ["lo", "hi"],
                           str(tmp_path / "u8"), [4, 4, 1], tf.uint8)
    seg = segmenters.load(path)
    assert seg.input_dtype == "uint8"
    images = np.full([2, 4, 4, 1], -1.0, np.float32)
    images[1] = 1.0
    np.testing.assert_array_equal(seg(images)[:, 0, 0], [0, 1])


def test_bad_segmenters_say_what_to_give(tmp_path, plugin):
    with pytest.raises(segmenters.SegmenterError, match="cannot load segmenter 'nope:f'"):
        segmenters.load("nope:f")
    with pytest.raises(segmenters.SegmenterError, match="unknown segmenter 'resnet'"):
        segmenters.load("resnet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(segmenters.SegmenterError, match="has no concepts.txt"):
        segmenters.load(str(tmp_path / "empty"))
    with pytest.raises(segmenters.SegmenterError, match="has no concept names"):
        segmenters.load("json:dumps")
    bad = segmenters.Segmenter(lambda images: images[..., 0], ["a"], name="float out")
    with pytest.raises(segmenters.SegmenterError, match="must map images .* to integer labels"):
        bad(np.zeros([1, 4, 4, 3], np.float32))
