"""Property-based tests (hypothesis): preprocessing, the image-grid writer, the config."""
import dataclasses

import numpy as np
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcgan_keras import config as config_lib
from dcgan_keras.data import preprocessing
from dcgan_keras.utils import images as image_utils

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def uint8_images(draw, max_side=70):
    height = draw(st.integers(1, max_side))
    width = draw(st.integers(1, max_side))
    channels = draw(st.sampled_from([1, 3, 4]))
    seed = draw(st.integers(0, 2**31 - 1))
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), np.uint8)


@SETTINGS
@given(image=uint8_images(), size=st.sampled_from([16, 32, 64]),
       channels=st.sampled_from([1, 3]), mode=st.sampled_from(preprocessing.PREPROCESS_MODES))
def test_any_image_preprocesses_to_the_right_shape_dtype_and_range(image, size, channels,
                                                                   mode):
    out = preprocessing.preprocess(tf.constant(image), size, channels, mode).numpy()
    assert out.shape == (size, size, channels) and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= -1.0 and out.max() <= 1.0
    if image.min() == image.max() and image.shape[-1] != 4 and mode == "crop_resize":
        # A flat image stays flat at its own level (no resampling artefacts).
        np.testing.assert_allclose(out, image.flat[0] / 127.5 - 1.0, atol=1e-5)


@SETTINGS
@given(n=st.integers(1, 20), side=st.integers(1, 12), channels=st.sampled_from([1, 3]),
       cols=st.one_of(st.none(), st.integers(1, 6)), pad=st.integers(0, 3),
       seed=st.integers(0, 1000))
def test_grid_holds_every_tile_at_its_place(n, side, channels, cols, pad, seed):
    images = np.random.default_rng(seed).integers(0, 256, (n, side, side, channels), np.uint8)
    grid = image_utils.make_grid(images, cols=cols, pad=pad, pad_value=7)
    columns = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    assert grid.shape == (rows * (side + pad) + pad, columns * (side + pad) + pad, channels)
    for i in range(n):
        r, c = divmod(i, columns)
        top, left = pad + r * (side + pad), pad + c * (side + pad)
        np.testing.assert_array_equal(grid[top:top + side, left:left + side], images[i])
    if pad:
        assert (grid[:pad] == 7).all()


@SETTINGS
@given(image_size=st.sampled_from([16, 32, 64, 128]), channels=st.sampled_from([1, 3]),
       batch_size=st.integers(1, 512), learning_rate=st.floats(1e-6, 1.0),
       ema_decay=st.floats(0.0, 0.9999), seed=st.integers(0, 2**31 - 1),
       dataset=st.sampled_from(["fashion_mnist", "mnist", "cifar10"]),
       on_nan=st.sampled_from(config_lib.ON_NAN))
def test_config_round_trips_through_json(**values):
    config = config_lib.TrainConfig(**values).validate()
    again = config_lib.TrainConfig.from_dict(
        __import__("json").loads(config.to_json())).validate()
    assert again == config
    assert dataclasses.asdict(again) == dataclasses.asdict(config)
