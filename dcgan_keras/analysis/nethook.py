"""Reading and editing a network's hidden layers by name, without touching its layers.

The piece every analysis that reads or edits a G layer shares (forget, dissection,
painting): the generator split at a named layer into two functional Keras models that
share its weights,

    head: z [B, z_dim] -> activation [B, h, w, c]
    tail: activation [B, h, w, c] -> image [B, S, S, C]

with an edit applied to the tensor in between (after GAN Dissection's
`nethook.InstrumentedModel`, Bau et al. 2018, which retains and replaces a layer's
output). The original model and its layers are never modified.
"""
import keras
import numpy as np
import tensorflow as tf


class UnknownLayerError(ValueError):
    """A layer name that the network does not have."""


def layer_names(model):
    """Names of the layers of `model` whose output can be read (all but its inputs)."""
    inputs = {id(t) for t in model.inputs}
    return [layer.name for layer in model.layers
            if not isinstance(layer, keras.layers.InputLayer) and id(layer.output) not in inputs]


def spatial_layer_names(model):
    """Names of the layers whose output is a feature map [B, h, w, c]."""
    return [name for name in layer_names(model) if len(model.get_layer(name).output.shape) == 4]


def check_layer(model, name, valid=None):
    """Returns the layer `name` of `model`; raises UnknownLayerError listing the valid ones.

    Args:
        model: a functional Keras model (Generator, Discriminator).
        name: the layer's name.
        valid: the names allowed here (default: `spatial_layer_names(model)`).
    """
    valid = spatial_layer_names(model) if valid is None else list(valid)
    if name not in valid:
        raise UnknownLayerError(f"unknown layer {name!r} of the {model.name}; valid layers: "
                                f"{', '.join(valid)}")
    return model.get_layer(name)


def layer_model(model, names):
    """A functional model: the model's input -> the outputs of layers `names` (a list)."""
    for name in names:
        check_layer(model, name)
    return keras.Model(model.input, [model.get_layer(n).output for n in names],
                       name=f"{model.name}_layers")


def batched_call(fn, x, batch_size=256):
    """Applies a TensorFlow function of a batch to NumPy `x` in batches; NumPy float32 out."""
    x = np.asarray(x, np.float32)
    return np.concatenate([np.asarray(fn(tf.constant(x[i:i + batch_size])), np.float32)
                           for i in range(0, len(x), batch_size)])


class ChannelEdit:
    """An edit of a [B, h, w, c] activation: chosen channels set to `value` where `where`.

    x' = (1 - m) * x + m * value, with m = 1 on the chosen channels (inside `where`, if
    given) and 0 elsewhere, as GAN Dissection's ablation/insertion. value=0 at all
    positions drops the maps (the paper's section 6.3.1).

    Args:
        channels: indices of the channels to edit.
        value: the value written (a scalar, or one per chosen channel).
        where: optional [h, w] (or [B, h, w]) weights in [0, 1] of the positions edited.
    """

    def __init__(self, channels, value=0.0, where=None):
        self.channels = sorted({int(c) for c in channels})
        self.value = value
        self.where = where

    def __call__(self, x):
        c = x.shape[-1]
        if any(ch < 0 or ch >= c for ch in self.channels):
            raise ValueError(f"channels must be in [0, {c}), got {self.channels}")
        onehot = np.zeros([c], np.float32)
        onehot[self.channels] = 1.0
        value = np.zeros([c], np.float32)
        value[self.channels] = self.value
        m = tf.constant(onehot, x.dtype)
        if self.where is not None:
            m = tf.cast(tf.convert_to_tensor(self.where)[..., None], x.dtype) * m
        return (1.0 - m) * x + m * tf.constant(value, x.dtype)


class SplitGenerator:
    """A generator split at a named layer: z -> activation, [edit], activation -> image.

    Args:
        generator: a `Generator` (or any functional model from z to images).
        layer: the name of the layer to split at (a feature map, e.g. "block1_relu").
    Attributes:
        head: keras.Model z -> activation of `layer`.
        tail: keras.Model activation -> image, with the generator's layers after `layer`.
    """

    def __init__(self, generator, layer):
        check_layer(generator, layer)
        self.layer = layer
        activation = generator.get_layer(layer).output
        self.head = keras.Model(generator.input, activation, name=f"z_to_{layer}")
        self.tail = keras.Model(activation, generator.output, name=f"{layer}_to_image")
        self._head = tf.function(lambda z: self.head(z, training=False), reduce_retracing=True)
        self._tails = {}

    @property
    def activation_shape(self):
        """[h, w, c] of the split layer's activation."""
        return list(self.head.output.shape[1:])

    def _tail(self, edit):
        key = id(edit)
        if key not in self._tails:  # one traced function per edit object
            self._tails[key] = (edit, tf.function(
                lambda a: self.tail(a if edit is None else edit(a), training=False),
                reduce_retracing=True))
        return self._tails[key][1]

    def activations(self, z, batch_size=256):
        """Activations [N, h, w, c] (NumPy) of z [N, z_dim], G in inference mode."""
        return batched_call(self._head, z, batch_size)

    def images_from(self, activations, edit=None, batch_size=256):
        """Images [N, S, S, C] in [-1, 1] from activations, with `edit` applied first."""
        return batched_call(self._tail(edit), activations, batch_size)

    def generate(self, z, edit=None, batch_size=256):
        """Images [N, S, S, C] in [-1, 1] of z, the split layer edited by `edit` (or not)."""
        head, tail = self._head, self._tail(edit)
        return batched_call(lambda x: tail(head(x)), z, batch_size)
