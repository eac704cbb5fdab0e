"""Guided backpropagation of D's units (Radford et al. 2016, section 6.2, figure 5).

Guided backpropagation (Springenberg et al. 2015, "Striving for simplicity") passes a
gradient back through a ReLU / LeakyReLU only where both the unit's input and the incoming
gradient are positive, which shows what in the image excites a unit. D's layers are
re-applied, in order and with their own weights, on a new input with every activation
replaced by its guided version; the Discriminator itself is not modified.
"""
import keras
import numpy as np
import tensorflow as tf

from dcgan_keras.analysis import nethook, outputs



def _activation_fn(layer):
    """The plain TensorFlow function of a ReLU / LeakyReLU layer, or None for others."""
    if isinstance(layer, keras.layers.LeakyReLU):
        return lambda x: tf.nn.leaky_relu(x, alpha=layer.negative_slope)
    if isinstance(layer, keras.layers.ReLU):
        return tf.nn.relu
    return None


def guided(activation):
    """`activation` (x -> y) with the guided gradient: dy * [x > 0] * [dy > 0]."""
    @tf.custom_gradient
    def fn(x):
        def grad(dy):
            return dy * tf.cast(x > 0, dy.dtype) * tf.cast(dy > 0, dy.dtype)
        return activation(x), grad
    return fn


def guided_model(model, layer):
    """A functional model: the model's input -> `layer`'s output, activations guided.

    Args:
        model: a functional model whose layers form one chain (as G and D do).
        layer: the name of the last layer applied.
    """
    nethook.check_layer(model, layer)
    x = inputs = keras.Input(shape=model.input.shape[1:], name="images")
    for current in model.layers:
        if isinstance(current, keras.layers.InputLayer):
            continue
        activation = _activation_fn(current)
        if activation is not None:
            x = keras.layers.Lambda(guided(activation), name=f"{current.name}_guided")(x)
        else:
            x = current(x)
        if current.name == layer:
            return keras.Model(inputs, x, name=f"{model.name}_guided_{layer}")
    raise ValueError(f"layer {layer!r} not found in the chain of {model.name}")


def top_images(activation_fn, images, units, top_k, batch_size=256):
    """The images that activate each unit most (its maximum over positions).

    Args:
        activation_fn: images [B, S, S, C] -> activations [B, h, w, c] (a TF function).
        images: real images [N, S, S, C] in [-1, 1].
        units: channel indices.
        top_k: images kept per unit.
    Returns:
        (indices [len(units), top_k] into images, best first; their activations).
    """
    acts = nethook.batched_call(
        lambda x: tf.reduce_max(tf.gather(activation_fn(x), units, axis=-1), axis=[1, 2]),
        images, batch_size)  # [N, len(units)]
    order = np.argsort(-acts, axis=0, kind="stable")[:top_k].T
    return order, np.take_along_axis(acts.T, order, axis=1)


def unit_maps(guided, images, unit):
    """Guided-backprop maps d(unit's largest activation)/d image for each image.

    Args:
        guided: a `guided_model` up to the unit's layer.
        images: [N, S, S, C] in [-1, 1].
        unit: a channel index of that layer.
    Returns:
        [N, S, S, C] gradients (NumPy).
    """
    x = tf.constant(np.asarray(images, np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        act = guided(x, training=False)[..., unit]  # [N, h, w]
        peak = tf.reduce_max(tf.reshape(act, [tf.shape(act)[0], -1]), axis=1)
    return tape.gradient(peak, x).numpy()


def normalise(maps):
    """Each map scaled to [-1, 1] around mid-grey for display (0 gradient = grey)."""
    maps = np.asarray(maps, np.float32)
    scale = np.abs(maps).reshape(len(maps), -1).max(axis=1)
    return maps / np.maximum(scale, 1e-12).reshape(-1, 1, 1, 1)


def run(networks, out_dir, real_images, layer=None, units=range(6), top_k=6, seed=0):
    """The `guided_backprop` verb: for each unit, the real images that excite it most and
    their guided-backprop maps, for the trained D and a randomly initialised one.

    Writes guided_backprop.png (trained) and guided_backprop_random.png: per unit one row
    of top_k images, then one row of their maps; and guided_backprop.json.

    Args:
        networks: workdir.Networks.
        out_dir: output directory.
        real_images: real images [N, S, S, C] in [-1, 1] to search.
        layer: a D layer name (default: the last conv block's activation, as figure 5).
        units: channel indices of that layer.
        top_k: images per unit.
        seed: seed of the random D.
    Returns:
        The JSON dict.
    """
    trained = networks.discriminator
    layer = layer or trained.feature_layer_names[-1]
    nethook.check_layer(trained, layer)
    units = [int(u) for u in units]
    channels = trained.get_layer(layer).output.shape[-1]
    if not units or min(units) < 0 or max(units) >= channels:
        raise IndexError(f"units must be in [0, {channels}) for layer {layer!r}, got {units}")
    result = {"layer": layer, "units": units, "num_real_images": len(real_images),
              "step": networks.step}
    for name, d in (("trained", trained), ("random", outputs.untrained_copy(trained, seed))):
        reader = nethook.layer_model(d, [layer])
        call = tf.function(lambda x, r=reader: r(x, training=False), reduce_retracing=True)
        order, acts = top_images(call, real_images, units, top_k)
        guided = guided_model(d, layer)
        rows = []
        for u, unit in enumerate(units):
            chosen = real_images[order[u]]
            rows += [chosen, normalise(unit_maps(guided, chosen, unit))]
        suffix = "" if name == "trained" else "_random"
        outputs.write_grid(out_dir, f"guided_backprop{suffix}.png", np.concatenate(rows),
                           cols=top_k)
        result[name] = {"top_indices": order.tolist(), "top_activations": acts.round(4).tolist()}
    outputs.write_json(out_dir, "guided_backprop.json", result)
    return result
