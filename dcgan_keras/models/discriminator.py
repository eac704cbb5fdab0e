"""The DCGAN discriminator (Radford et al. 2016, section 3)."""
import keras
from keras import layers

from dcgan_keras.models import architecture, fast_layers


@keras.saving.register_keras_serializable(package="dcgan_keras")
class Discriminator(keras.Model):
    """image in [-1, 1] -> logit of "real".

    Strided 4x4 convolutions halve the resolution down to 4x4 (no pooling), LeakyReLU(0.2)
    after each, BatchNorm after each but the first (the D input layer); the last conv
    features are flattened into one linear logit (sigmoid applied in the loss). No layer
    has a bias, as in the paper's code: BatchNorm's beta is the only offset. For
    image_size=64, base_width=128: 64x64x3 -> 32x32x128 -> 16x16x256 -> 8x8x512 ->
    4x4x1024 -> 1.

    Layer names: block{i}_conv, block{i}_bn (i >= 2), block{i}_lrelu, flatten, logit.

    Args:
        image_size: input height and width, a power of two in [16, 256].
        channels: 1 or 3.
        base_width: filters of the first conv; each lower resolution doubles it.
        sync_batchnorm: synchronize BatchNorm statistics across replicas.
    """

    def __init__(self, image_size=64, channels=3, base_width=architecture.PAPER_BASE_WIDTH,
                 sync_batchnorm=False, **kwargs):
        architecture.validate(image_size, channels, base_width=base_width)
        widths = architecture.widths(image_size, base_width)

        # === Functional Model ===
        images = keras.Input(shape=(image_size, image_size, channels), name="images")
        x = images
        for i, filters in enumerate(widths, start=1):
            x = fast_layers.Conv2D(filters, 4, strides=2, padding="same", use_bias=False,
                                   kernel_initializer=architecture.weight_init(),
                                   name=f"block{i}_conv")(x)
            if i > 1:  # no BatchNorm on the D input layer
                x = architecture.batch_norm(f"block{i}_bn", sync_batchnorm)(x)
            x = fast_layers.LeakyReLU(negative_slope=architecture.LEAKY_SLOPE,
                                 name=f"block{i}_lrelu")(x)
        x = layers.Flatten(name="flatten")(x)
        # float32 logit under mixed precision: the loss needs it.
        logit = fast_layers.Dense(1, use_bias=False,
                                  kernel_initializer=architecture.weight_init(),
                                  dtype="float32", name="logit")(x)
        kwargs.setdefault("name", "discriminator")
        super().__init__(inputs=images, outputs=logit, **kwargs)

        # === Config ===
        self.image_size = image_size
        self.channels = channels
        self.base_width = base_width
        self.sync_batchnorm = sync_batchnorm

    @property
    def feature_layer_names(self):
        """Every conv layer's activation, highest resolution first (the paper's probe)."""
        return [f"block{i}_lrelu" for i in
                range(1, architecture.num_blocks(self.image_size) + 1)]

    def get_config(self):
        return {
            "image_size": self.image_size,
            "channels": self.channels,
            "base_width": self.base_width,
            "sync_batchnorm": self.sync_batchnorm,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
