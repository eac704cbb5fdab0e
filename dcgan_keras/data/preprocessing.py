"""The paper's only preprocessing: centre-crop to square, resize, scale to [-1, 1].

All functions are TensorFlow ops, usable eagerly and inside tf.data.
"""
import tensorflow as tf

PREPROCESS_MODES = ("crop_resize", "pad")
# Bumped whenever the pixels a mode produces change (2: JPEGs decoded at a DCT scale), so
# that caches of features of real images (evaluation/sample_quality.py) are recomputed.
PIXELS_VERSION = 2
JPEG_MAGIC = b"\xff\xd8\xff"
JPEG_RATIOS = (2, 4, 8)  # the DCT-domain downscaling factors tf.io.decode_jpeg offers


def decode(encoded, channels, min_side=None):
    """Decodes JPEG/PNG/GIF/BMP/WebP bytes to uint8 [H, W, channels].

    Decoding always asks for RGB (the only mode every decoder supports: grayscale files
    are replicated, an alpha channel dropped), then converts to grayscale if needed.

    Args:
        encoded: scalar string tensor, the file's bytes.
        channels: 1 or 3.
        min_side: if given, a JPEG is decoded at 1/2, 1/4 or 1/8 scale in the DCT domain
            (libjpeg's scaled IDCT, like Pillow's draft mode): the strongest reduction
            that keeps its short side >= min_side, so a following resize to min_side
            still only shrinks. Other formats, and JPEGs too small to shrink, decode in
            full. After `preprocess`, a 128x128 JPEG read this way at 32x32 differs from
            the full decode by ~0.01-0.03 on average in [-1, 1] units (the DCT scaling is
            a sharper low-pass than the antialiased bilinear kernel).
    Returns:
        uint8 [H, W, channels].
    """
    if min_side is None:
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    else:
        is_jpeg = tf.equal(tf.strings.substr(encoded, 0, 3), JPEG_MAGIC)
        image = tf.cond(
            is_jpeg, lambda: _decode_jpeg_at_least(encoded, min_side),
            lambda: tf.io.decode_image(encoded, channels=3, expand_animations=False))
    return to_channels(image, channels)


def _decode_jpeg_at_least(encoded, min_side):
    """JPEG bytes -> uint8 [H', W', 3] at the largest ratio keeping min(H', W') >= min_side."""
    shape = tf.image.extract_jpeg_shape(encoded)  # reads the header only
    short = tf.minimum(shape[0], shape[1])
    # libjpeg gives ceil(side / ratio); floor keeps the choice safe. Ratios increase, so
    # the count of ratios that fit is the index of the largest one.
    fits = tf.cast(short // tf.constant(JPEG_RATIOS, tf.int32) >= min_side, tf.int32)
    return tf.switch_case(tf.reduce_sum(fits), [
        lambda ratio=ratio: tf.io.decode_jpeg(encoded, channels=3, ratio=ratio)
        for ratio in (1,) + JPEG_RATIOS])


def to_channels(image, channels):
    """uint8 or float [H, W, C] with a static C in (1, 3, 4) -> [H, W, channels]."""
    image = tf.convert_to_tensor(image)
    have = image.shape[-1]
    if have == 4:
        image, have = image[..., :3], 3
    if have == channels:
        return image
    if have == 1 and channels == 3:
        return tf.image.grayscale_to_rgb(image)
    if have == 3 and channels == 1:
        dtype = image.dtype
        gray = tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))
        return tf.cast(tf.round(gray), dtype) if dtype == tf.uint8 else gray
    raise ValueError(f"cannot convert an image with {have} channels to {channels}")


def preprocess(image, image_size, channels, mode="crop_resize"):
    """uint8 image [H, W, C] of any size -> float32 [image_size, image_size, channels] in [-1, 1].

    Args:
        image: uint8 tensor [H, W, C], C static.
        image_size: output side.
        channels: 1 or 3.
        mode: "crop_resize" (the paper: centre crop to a square, then resize with
            antialiasing) or "pad" (centre pad/crop without resampling, e.g. 28x28 digits
            to 32x32 as the PyTorch peers do).
    Returns:
        float32 [image_size, image_size, channels] in [-1, 1].
    """
    if mode not in PREPROCESS_MODES:
        raise ValueError(f"preprocess mode must be one of {PREPROCESS_MODES}, got {mode!r}")
    image = to_channels(image, channels)
    if mode == "pad":
        image = tf.image.resize_with_crop_or_pad(image, image_size, image_size)
        image = tf.cast(image, tf.float32)
    else:
        shape = tf.shape(image)
        height, width = shape[0], shape[1]
        side = tf.minimum(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        # A plain slice: crop_to_bounding_box adds assertion ops we do not need here.
        image = tf.cast(image[top:top + side, left:left + side], tf.float32)
        # At scale 1 the antialiased bilinear kernel is the identity, yet the resize op
        # costs ~0.1 ms per image even then (e.g. JPEGs decoded at the target size).
        image = tf.cond(
            tf.equal(side, image_size), lambda: image,
            lambda: tf.image.resize(image, [image_size, image_size], method="bilinear",
                                    antialias=True))
    image = tf.clip_by_value(image / 127.5 - 1.0, -1.0, 1.0)
    return tf.ensure_shape(image, [image_size, image_size, channels])

