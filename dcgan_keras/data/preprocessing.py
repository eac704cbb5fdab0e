"""The paper's only preprocessing: centre-crop to square, resize, scale to [-1, 1].

All functions are TensorFlow ops, usable eagerly and inside tf.data.
"""
import tensorflow as tf

PREPROCESS_MODES = ("crop_resize", "pad")


def decode(encoded, channels):
    """Decodes JPEG/PNG/GIF/BMP/WebP bytes to uint8 [H, W, channels].

    Decoding always asks for RGB (the only mode every decoder supports: grayscale files
    are replicated, an alpha channel dropped), then converts to grayscale if needed.
    """
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    return to_channels(image, channels)


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
        image = tf.image.crop_to_bounding_box(image, (height - side) // 2, (width - side) // 2,
                                              side, side)
        image = tf.image.resize(tf.cast(image, tf.float32), [image_size, image_size],
                                method="bilinear", antialias=True)
    image = tf.clip_by_value(image / 127.5 - 1.0, -1.0, 1.0)
    return tf.ensure_shape(image, [image_size, image_size, channels])


def to_uint8(images):
    """[-1, 1] float images -> uint8 [0, 255] (for PNG grids and TensorBoard)."""
    images = tf.clip_by_value((tf.cast(images, tf.float32) + 1.0) * 127.5, 0.0, 255.0)
    return tf.cast(tf.round(images), tf.uint8)
