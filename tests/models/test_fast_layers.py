"""fast_layers compute what Keras' layers compute: outputs, gradients, moving statistics."""
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from dcgan_keras.models import fast_layers, native_ops
from testutil import keras_and_fast_layer


@pytest.fixture
def policy():
    previous = keras.config.dtype_policy()
    yield keras.config.set_dtype_policy
    keras.config.set_dtype_policy(previous)


def _bn_pair(**kwargs):
    kwargs = dict(momentum=0.9, epsilon=1e-5, **kwargs)
    keras_bn, fast_bn = (keras.layers.BatchNormalization(**kwargs),
                         fast_layers.BatchNormalization(**kwargs))
    return keras_bn, fast_bn


def _run(layer, x, weights):
    """Output, d(loss)/d(x, gamma, beta) and moving statistics after one training call."""
    x = tf.cast(x, layer.compute_dtype)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights)
    grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
    return [np.asarray(tf.cast(t, tf.float32)) for t in
            [y, *grads, layer.moving_mean, layer.moving_variance]]


@pytest.mark.parametrize("name,atol", [("float32", 2e-5), ("mixed_bfloat16", 2e-2)])
def test_batchnorm_matches_keras_in_training(policy, name, atol):
    policy(name)
    x = tf.random.stateless_normal([8, 4, 4, 16], seed=[1, 2]) * 3.0 + 2.0
    weights = tf.random.stateless_normal(x.shape, seed=[3, 4])
    keras_bn, fast_bn = _bn_pair(gamma_initializer=keras.initializers.RandomNormal(1, 0.1))
    keras_bn.build(x.shape)
    fast_bn.build(x.shape)
    fast_bn.set_weights(keras_bn.get_weights())
    expected, got = _run(keras_bn, x, weights), _run(fast_bn, x, weights)
    for name_, a, b in zip(["y", "dx", "dgamma", "dbeta", "moving_mean", "moving_var"],
                           expected, got):
        scale = max(1.0, float(np.abs(a).max()))
        np.testing.assert_allclose(b, a, atol=atol * scale, err_msg=name_)
    # Inference uses the moving statistics, as Keras does.
    np.testing.assert_allclose(fast_bn(x, training=False), keras_bn(x, training=False),
                               atol=atol * 10)


def _reference_and_fast(fast_fn, reference_fn, x, kernel, dy):
    grads = []
    for fn in (reference_fn, fast_fn):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            y = fn(x, kernel)
            loss = tf.reduce_sum(y * dy)
        grads.append([y, *tape.gradient(loss, [x, kernel])])
    return grads


def _check_down_and_up(conv_down, conv_up, n, size, c_in, c_out, seed):
    """Outputs and gradients of a fast stride-2 conv pair equal TensorFlow's autodiff."""
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.normal(size=(n, size, size, c_in)), tf.float32)
    kernel = tf.constant(rng.normal(size=(4, 4, c_in, c_out)), tf.float32)
    low = tf.constant(rng.normal(size=(n, size // 2, size // 2, c_out)), tf.float32)
    # Down: x -> low resolution.
    expected, got = _reference_and_fast(conv_down,
                                        lambda a, k: tf.nn.conv2d(a, k, 2, "SAME"),
                                        x, kernel, low)
    for a, b in zip(expected, got):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-4)
    # Up: low resolution -> x's shape, with the same kernel.
    expected, got = _reference_and_fast(
        conv_up,
        lambda a, k: tf.nn.conv2d_transpose(a, k, [n, size, size, c_in], 2, "SAME"),
        low, kernel, x)
    for a, b in zip(expected, got):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("n,size,c_in,c_out", [(3, 8, 5, 7), (2, 4, 6, 3), (2, 16, 3, 4)])
def test_conv_gradients_match_autodiff(n, size, c_in, c_out):
    _check_down_and_up(fast_layers.conv_down, fast_layers.conv_up, n, size, c_in, c_out,
                       seed=size)


@pytest.mark.parametrize("n,size,c_in,c_out", [(3, 16, 5, 7), (2, 8, 3, 4)])
def test_kernel_grad_only_convs_match_autodiff(n, size, c_in, c_out):
    """conv_*_kernel_grad: oneDNN forward and input gradient, matmul kernel gradient."""
    _check_down_and_up(fast_layers.conv_down_kernel_grad, fast_layers.conv_up_kernel_grad,
                       n, size, c_in, c_out, seed=size + 1)


def test_the_padded_space_to_depth_convs_are_the_stride_2_convs():
    """conv_down_padded of padded_space_to_depth(x): tf.nn.conv2d(x, k, 2, "SAME"), its
    gradients through the form to x and to the kernel as autodiff's, to bfloat16 rounding;
    conv_up_padded the same for the transposed convolution."""
    if not native_ops.kernel_grad_takes(8, 8, 32, 32):
        pytest.skip("the native AMX kernel gradient does not run here")
    rng = np.random.default_rng(4)
    x = tf.constant(rng.normal(size=(2, 16, 16, 32)), tf.bfloat16)
    kernel = tf.constant(rng.normal(size=(4, 4, 32, 32)) * 0.1, tf.bfloat16)
    dy = tf.constant(rng.normal(size=(2, 8, 8, 32)), tf.bfloat16)
    expected, got = _reference_and_fast(
        lambda a, k: fast_layers.conv_down_padded(native_ops.padded_space_to_depth(a), k),
        lambda a, k: tf.nn.conv2d(a, k, 2, "SAME"), x, kernel, dy)
    for a, b in zip(expected, got):
        a, b = (np.asarray(tf.cast(t, tf.float32)) for t in (a, b))
        np.testing.assert_allclose(b, a, atol=0.02 * np.abs(a).max())
    # conv_up_padded: the transposed convolution in that form (inside the padding), and
    # its gradients from dy in that form with zeros on the padding
    form = native_ops.padded_space_to_depth
    expected, got = _reference_and_fast(
        lambda a, k: native_ops.from_padded_space_to_depth(fast_layers.conv_up_padded(a, k)),
        lambda a, k: tf.nn.conv2d_transpose(a, k, [2, 16, 16, 32], 2, "SAME"), dy, kernel, x)
    for a, b in zip(expected, got):
        a, b = (np.asarray(tf.cast(t, tf.float32)) for t in (a, b))
        np.testing.assert_allclose(b, a, atol=0.02 * np.abs(a).max())
    assert fast_layers.conv_up_padded(dy, kernel).shape == form(x).shape


@pytest.mark.parametrize("name", ["float32", "mixed_bfloat16"])
def test_leaky_relu_matches_keras(policy, name):
    """Output and input gradient (taken from the output) equal Keras' LeakyReLU's."""
    policy(name)
    x = tf.random.stateless_normal([4, 6, 6, 8], seed=[7, 8])
    weights = tf.random.stateless_normal(x.shape, seed=[9, 10])
    results = []
    for layer in (keras.layers.LeakyReLU(negative_slope=0.2),
                  fast_layers.LeakyReLU(negative_slope=0.2)):
        xc = tf.cast(x, layer.compute_dtype)
        with tf.GradientTape() as tape:
            tape.watch(xc)
            y = layer(xc)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights)
        results.append([np.asarray(tf.cast(t, tf.float32)) for t in (y, tape.gradient(loss, xc))])
    for a, b in zip(*results):
        np.testing.assert_array_equal(b, a)
    assert fast_layers.LeakyReLU.from_config(
        keras.layers.LeakyReLU(negative_slope=0.2).get_config()).negative_slope == 0.2


@pytest.mark.parametrize("cls,fast_cls,shape", [
    (keras.layers.Conv2D, fast_layers.Conv2D, (4, 8, 8, 16)),
    (keras.layers.Conv2DTranspose, fast_layers.Conv2DTranspose, (4, 4, 4, 16)),
    (keras.layers.Conv2D, fast_layers.Conv2D, (4, 16, 16, 16)),  # kernel gradient only
    (keras.layers.Conv2DTranspose, fast_layers.Conv2DTranspose, (4, 8, 8, 16)),
])
@pytest.mark.parametrize("matmul_side", [0, 4])  # without AMX; with AMX
def test_bfloat16_conv_layers_match_keras(policy, monkeypatch, cls, fast_cls, shape,
                                          matmul_side):
    """The layers that take a matmul path (bfloat16, low side <= 8) agree with Keras'."""
    policy("mixed_bfloat16")
    monkeypatch.setattr(fast_layers, "MAX_MATMUL_SIDE", matmul_side)
    calls = []
    original = fast_layers.kernel_gradient
    monkeypatch.setattr(fast_layers, "kernel_gradient",
                        lambda *args: calls.append(1) or original(*args))
    results = keras_and_fast_layer(cls, fast_cls, shape, [5, 6], filters=8)
    assert calls == [1]  # the fast layer's kernel gradient was the matmul one
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, atol=0.02 * np.abs(a).max())


def test_custom_gradients_are_named_after_their_layer(policy, monkeypatch):
    """The matmul paths' gradient ops sit under gradient_tape/<the layer's scope>, as
    TensorFlow's own gradients do, so a profile can say which layer each product is."""
    policy("mixed_bfloat16")
    monkeypatch.setattr(fast_layers, "MAX_MATMUL_SIDE", 4)  # every product a matmul
    layers = [fast_layers.Conv2D(8, 4, strides=2, padding="same", name="down"),
              fast_layers.LeakyReLU(negative_slope=0.2, name="lrelu"),
              fast_layers.Conv2DTranspose(4, 4, strides=2, padding="same", name="up")]
    x = tf.random.stateless_normal([2, 8, 8, 4], seed=[1, 2])

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = x
            for layer in layers:
                y = layer(y)
            loss = tf.reduce_sum(tf.cast(y, tf.float32))
        return tape.gradient(loss, [x] + [layer.kernel for layer in layers[::2]])

    ops = step.get_concrete_function(x).graph.get_operations()

    def layer_of(op):  # "gradient_tape/down_1/MatMul" -> "down" (scopes take a counter)
        parts = op.name.split("/")
        scope = parts[1] if parts[0] == "gradient_tape" and len(parts) > 2 else parts[0]
        return re.sub(r"_\d+$", "", scope)

    grads = [op for op in ops if op.name.startswith("gradient_tape/")]
    by_layer = {layer.name: sorted(op.type for op in grads if layer_of(op) == layer.name)
                for layer in layers}
    # down: dx (matmul + col2im) and dkernel (gather + matmul); up: dx as a conv (gather
    # + matmul) and dkernel (gather + matmul); lrelu: its gradient from the output.
    # (col2im: the native op where it is built, which takes the columns in the kernel's
    # own order, else the kernel's blocks and the interleave of the output are two
    # transposes; there the kernel's float32 -> bfloat16 cast is native too, and its
    # gradient the native cast back, as is down's cast of its float32 input)
    native = native_ops.library() is not None
    assert by_layer["down"].count("MatMul") == 2
    assert by_layer["down"].count("DcganCol2Im") == native
    assert by_layer["down"].count("Transpose") == (0 if native else 2)
    assert by_layer["down"].count("DcganToFloat") == 2 * native
    assert by_layer["up"].count("DcganToFloat") == native
    assert by_layer["up"].count("MatMul") == 2
    assert by_layer["up"].count("DcganIm2Col" if native else "GatherV2") == 2
    assert by_layer["lrelu"] == (["DcganActivationGrad"] if native else ["LeakyReluGrad"])
    products = [op for op in ops if op.type in ("MatMul", "GatherV2", "Transpose", "DcganCol2Im",
                                               "DcganIm2Col")]
    assert products and all(layer_of(op) in by_layer for op in products), [
        op.name for op in products if layer_of(op) not in by_layer]


@pytest.mark.parametrize("cls,fast_cls,shape,filters", [
    (keras.layers.Conv2D, fast_layers.Conv2D, (4, 32, 32, 3), 8),  # D's first layer
    (keras.layers.Conv2DTranspose, fast_layers.Conv2DTranspose, (4, 16, 16, 8), 3),  # G's last
    (keras.layers.Conv2D, fast_layers.Conv2D, (4, 32, 32, 1), 8),  # one channel
])
def test_few_channel_layers_match_keras(policy, monkeypatch, cls, fast_cls, shape, filters):
    """A layer with 1-4 channels on its image side (low side above 8) computes its
    transposed product (D's input gradient, G's forward) as a matmul + col2im, once,
    and its output, input and kernel gradients agree with Keras' layer."""
    policy("mixed_bfloat16")
    calls = []
    original = fast_layers.conv_transpose
    monkeypatch.setattr(fast_layers, "conv_transpose",
                        lambda *args: calls.append(1) or original(*args))
    kwargs = dict(filters=filters, kernel_size=4, strides=2, padding="same", use_bias=False)
    reference, fast = cls(**kwargs), fast_cls(**kwargs)
    x = tf.random.stateless_normal(shape, seed=[7, 6])
    weights = tf.random.stateless_normal([1] + [s for s in fast.compute_output_shape(shape)[1:]],
                                         seed=[1, 1])
    reference.build(shape)
    fast.build(shape)
    fast.set_weights(reference.get_weights())
    results = []
    for layer in (reference, fast):
        xc = tf.cast(x, "bfloat16")
        with tf.GradientTape() as tape:
            tape.watch(xc)
            y = layer(xc)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights)
        results.append([y, *tape.gradient(loss, [xc, layer.kernel])])
    assert calls == [1]
    for a, b in zip(*results):
        a, b = np.asarray(tf.cast(a, tf.float32)), np.asarray(tf.cast(b, tf.float32))
        np.testing.assert_allclose(b, a, atol=0.02 * np.abs(a).max())


def test_all_products_are_matmuls_at_4x4_only_with_amx():
    """On an AMX Xeon the three products at 4x4 were faster as matmuls; on a Zen 4 without
    AMX oneDNN's forward and input gradient were, and only the kernel gradient is a matmul."""
    assert fast_layers.max_matmul_side({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}) == 4
    assert fast_layers.max_matmul_side({"avx512f", "avx512_bf16"}) == 0
    assert fast_layers.max_matmul_side(set()) == 0
    assert fast_layers.MAX_MATMUL_SIDE < fast_layers.MAX_MATMUL_KERNEL_GRAD_SIDE


@pytest.mark.parametrize("matmul_side,expected", [(4, "matmul"), (0, "kernel_grad")])
def test_the_path_of_a_4x4_layer_follows_the_cpu_rule(policy, monkeypatch, matmul_side,
                                                       expected):
    policy("mixed_bfloat16")
    monkeypatch.setattr(fast_layers, "MAX_MATMUL_SIDE", matmul_side)
    layer = fast_layers.Conv2D(8, 4, strides=2, padding="same")
    x = tf.zeros([2, 8, 8, 16], "bfloat16")
    layer.build(x.shape)
    monkeypatch.setattr(native_ops, "kernel_grad_takes", lambda *shapes: False)
    assert fast_layers._fast_path(layer, x, (4, 4), 16, 8) == expected
    assert fast_layers._fast_path(layer, x, (8, 8), 16, 8) == "kernel_grad"
    assert fast_layers._fast_path(layer, x, (16, 16), 16, 8) is None
    assert fast_layers._fast_path(layer, x, (16, 16), 3, 8) == "few_channels"
    # where the AMX kernel gradient takes the shapes, at any side; an image's few
    # channels keep their path (whose kernel gradient is the AMX one)
    monkeypatch.setattr(native_ops, "kernel_grad_takes", lambda *shapes: True)
    assert fast_layers._fast_path(layer, x, (16, 16), 16, 8) == "kernel_grad"
    assert fast_layers._fast_path(layer, x, (16, 16), 3, 8) == "few_channels"


# 8 filters: oneDNN's kernel gradient; 32: the native AMX one where the CPU has AMX
@pytest.mark.parametrize("filters", [8, 32])
def test_the_first_layers_leaky_relu_fuses_into_its_convolution(policy, tmp_path, filters):
    """D's first layer (few channels) and the LeakyReLU after it run as one op in the
    forward pass (no LeakyRelu op runs), with Keras' values up to bfloat16 rounding, in a
    training step's graph (with the gradient tape's custom-gradient ops around both
    layers): where the AMX ops take the layer (32 filters on an AMX CPU) the native
    convolution with its activation, else oneDNN's, which Grappler's remapper fuses with
    the activation because the convolution carries a zero bias."""
    import importlib.util
    from testutil import REPO
    spec = importlib.util.spec_from_file_location(
        "step_profile", f"{REPO}/benchmarks/step_profile.py")
    step_profile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(step_profile)

    policy("mixed_bfloat16")
    conv = fast_layers.Conv2D(filters, 4, strides=2, padding="same", use_bias=False,
                              name="c")
    lrelu = fast_layers.LeakyReLU(negative_slope=0.2, name="a")
    x = tf.random.stateless_normal([4, 32, 32, 3], seed=[3, 3])
    conv.build(x.shape)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            y = lrelu(conv(x))
            loss = tf.reduce_sum(tf.cast(y, tf.float32))
        return y, tape.gradient(loss, conv.kernel)

    step(x)
    tf.profiler.experimental.start(str(tmp_path))
    y, _ = step(x)
    tf.profiler.experimental.stop()
    forward = [t for name, t, _, _ in step_profile.read_trace(str(tmp_path))
               if not name.startswith("gradient_tape")]
    native = native_ops.conv_few_channels_runs(tf.cast(x, "bfloat16"), filters) and (
        filters % 32 == 0)  # and the activation's kernel gradient takes it
    assert ("DcganConvFewChannels" if native else "FusedConv2D") in forward, forward
    assert "LeakyRelu" not in forward and "Conv2D" not in forward, forward
    reference = tf.nn.leaky_relu(tf.nn.conv2d(tf.cast(x, "bfloat16"), tf.cast(
        conv.kernel, "bfloat16"), 2, "SAME"), 0.2)
    a = np.asarray(tf.cast(reference, tf.float32))
    np.testing.assert_allclose(np.asarray(tf.cast(y, tf.float32)), a, atol=0.02 * np.abs(a).max())


def _values_and_gradients(layer, x, weights, graph_ops):
    """The layer's output and d(loss)/d(x, its weights) in a tf.function, as float32 arrays;
    `graph_ops` receives the function's op types (`weights`: in the output's dtype, so the
    loss adds no cast)."""
    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x) * weights)
        return [layer(x)] + tape.gradient(loss, [x] + layer.trainable_weights)

    graph_ops.extend(op.type for op in step.get_concrete_function(x).graph.get_operations())
    return [np.asarray(tf.cast(t, tf.float32)) for t in step(x)]


@pytest.mark.parametrize("make", [
    # G's projection (bfloat16, float32 z), D's logit (float32, bfloat16 features)
    lambda m: m.Dense(6, use_bias=False, name="dense"),
    lambda m: m.Dense(1, use_bias=False, dtype="float32", name="logit"),
    # G's float32 tanh on bfloat16 features
    lambda m: m.Activation("tanh", dtype="float32", name="tanh"),
], ids=["projection", "logit", "tanh"])
@pytest.mark.parametrize("input_dtype", [tf.float32, tf.bfloat16])
def test_input_casts_are_keras_own_bit_for_bit(policy, make, input_dtype):
    """The layers that cast their own inputs (and the Dense its kernel) give Keras' layer's
    values and gradients exactly, with no TensorFlow Cast where the native ops run; the
    float32 logit on bfloat16 features, `native_ops.logit` there, to float32 rounding."""
    policy("mixed_bfloat16")
    rng = np.random.default_rng(8)
    x = tf.cast(tf.constant(rng.normal(0, 1, [4, 9]), tf.float32), input_dtype)
    kernel = rng.normal(0, 1, [9, 6]).astype(np.float32) * np.float32(1 + 2.0 ** -12)
    results = []
    for layer in (make(keras.layers), make(fast_layers)):
        layer.build(x.shape)
        if layer.weights:  # not bfloat16 values: the kernel's cast rounds
            layer.set_weights([kernel[:, :layer.units]])
        units = layer.units if layer.weights else 9
        weights = tf.constant(np.random.default_rng(9).normal(0, 1, [4, units]),
                              layer.compute_dtype)  # the same for both
        ops = []
        results.append((_values_and_gradients(layer, x, weights, ops), ops))
    (expected, keras_ops), (got, fast_ops) = results
    fast = layer
    native_logit = (native_ops.library() is not None and input_dtype == tf.bfloat16
                    and fast.compute_dtype == "float32" and bool(fast.weights))
    assert ("DcganLogit" in fast_ops) == native_logit
    for i, (a, b) in enumerate(zip(got, expected)):  # y, dx, the weights' gradients
        if native_logit and i != 1:  # float32 sums in another order; dx one product each
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * np.abs(b).max())
        else:
            np.testing.assert_array_equal(a, b)
    # casts where the input is not in the compute dtype, or the kernel (bfloat16) is not
    casts = (input_dtype.name != fast.compute_dtype
             or (bool(fast.weights) and fast.compute_dtype == "bfloat16"))
    assert ("Cast" in keras_ops) == casts
    if native_ops.library() is not None:
        assert "Cast" not in fast_ops
        # the logit op reads bfloat16 features as they are
        assert bool({"DcganToBfloat16", "DcganToFloat"} & set(fast_ops)) == (
            casts and not native_logit)
