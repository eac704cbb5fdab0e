"""The DCGAN generator (Radford et al. 2016, figure 1)."""
import keras
from keras import layers

from dcgan_keras.models import architecture, fast_layers, latent


@keras.saving.register_keras_serializable(package="dcgan_keras")
class Generator(keras.Model):
    """z -> image in [-1, 1].

    z is projected by one matmul and reshaped to 4x4xC (not a hidden fully connected
    layer: it has no nonlinearity before the reshape), followed by fractional-strided
    convolutions that double the resolution. BatchNorm + ReLU after every layer but the
    output, which is tanh. No layer has a bias, as in the paper's code. For
    image_size=64, base_width=128:
    100 -> 4x4x1024 -> 8x8x512 -> 16x16x256 -> 32x32x128 -> 64x64x3.

    Layer names: project, project_reshape, project_bn, project_relu, then
    block{i}_deconv / block{i}_bn / block{i}_relu for i = 1..n-1, then output_deconv and
    output_tanh.

    Args:
        image_size: output height and width, a power of two in [16, 256].
        channels: 1 or 3.
        z_dim: size of the latent vector.
        base_width: filters of the last hidden layer; each lower resolution doubles it.
        sync_batchnorm: synchronize BatchNorm statistics across replicas.
        z_distribution: the prior of z this G is trained on and sampled from, "uniform"
            (U(-1, 1), the paper's) or "normal" (N(0, 1)); see models/latent.py.
    """

    def __init__(self, image_size=64, channels=3, z_dim=100,
                 base_width=architecture.PAPER_BASE_WIDTH, sync_batchnorm=False,
                 z_distribution=latent.PAPER, **kwargs):
        architecture.validate(image_size, channels, z_dim, base_width)
        latent.check(z_distribution)
        widths = architecture.widths(image_size, base_width)[::-1]  # [1024, 512, 256, 128]

        # === Functional Model ===
        z = keras.Input(shape=(z_dim,), name="z")
        x = fast_layers.Dense(4 * 4 * widths[0], use_bias=False,
                         kernel_initializer=architecture.weight_init(), name="project")(z)
        x = layers.Reshape((4, 4, widths[0]), name="project_reshape")(x)
        x = architecture.batch_norm("project_bn", sync_batchnorm)(x)
        x = fast_layers.ReLU(name="project_relu")(x)
        for i, filters in enumerate(widths[1:], start=1):
            x = fast_layers.Conv2DTranspose(filters, 4, strides=2, padding="same",
                                            use_bias=False,
                                            kernel_initializer=architecture.weight_init(),
                                            name=f"block{i}_deconv")(x)
            x = architecture.batch_norm(f"block{i}_bn", sync_batchnorm)(x)
            x = fast_layers.ReLU(name=f"block{i}_relu")(x)
        x = fast_layers.Conv2DTranspose(channels, 4, strides=2, padding="same",
                                        use_bias=False, kernel_initializer=architecture.weight_init(),
                                        name="output_deconv")(x)
        # float32 output under mixed precision: images leave G in full precision.
        images = fast_layers.Activation("tanh", dtype="float32", name="output_tanh")(x)
        kwargs.setdefault("name", "generator")
        super().__init__(inputs=z, outputs=images, **kwargs)

        # === Config ===
        self.image_size = image_size
        self.channels = channels
        self.z_dim = z_dim
        self.base_width = base_width
        self.sync_batchnorm = sync_batchnorm
        self.z_distribution = z_distribution

    @property
    def conv_layer_names(self):
        """Names of the hidden activations, lowest resolution first (for probes/dissection)."""
        return ["project_relu"] + [f"block{i}_relu" for i in
                                   range(1, architecture.num_blocks(self.image_size))]

    def get_config(self):
        return {
            "image_size": self.image_size,
            "channels": self.channels,
            "z_dim": self.z_dim,
            "base_width": self.base_width,
            "sync_batchnorm": self.sync_batchnorm,
            "z_distribution": self.z_distribution,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        # a .keras file saved before the prior was a choice was trained on N(0, 1)
        return cls(**{"z_distribution": latent.LEGACY, **config})
