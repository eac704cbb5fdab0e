"""The native fused batch norm + activation (models/native_ops.py): values and gradients
against TensorFlow's ops, the layers' use of it, and when it stays off."""
import collections
import contextlib
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from dcgan_keras.models import fast_layers, native_ops
from testutil import keras_and_fast_layer

EPSILON = 1e-5


@pytest.fixture
def native():
    if native_ops.library() is None:
        pytest.skip(f"the native op is off here: {native_ops.error()}")
    return native_ops


@pytest.fixture
def bfloat16_policy():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    yield
    keras.config.set_dtype_policy(previous)


@contextlib.contextmanager
def _tensorflows_ops():
    """The layers as they run where the native ops are off."""
    original = native_ops.usable
    native_ops.usable = lambda x: False
    try:
        yield
    finally:
        native_ops.usable = original


def _inputs(shape, seed):
    rng = np.random.default_rng(seed)
    c = shape[-1]
    x = tf.constant(rng.normal(0.7, 2.0, shape), tf.bfloat16)  # a mean far from 0
    gamma = tf.constant(rng.uniform(0.5, 1.5, c), tf.float32)
    beta = tf.constant(rng.normal(0.0, 0.5, c), tf.float32)
    # bfloat16 values, so the incoming gradient of a bfloat16 y is not rounded
    weights = tf.cast(tf.constant(rng.normal(0.0, 1.0, shape), tf.bfloat16), tf.float32)
    return x, gamma, beta, weights


def _reference(x, gamma, beta, slope):
    """Batch norm + activation in float32 on the bfloat16 values of x, by TensorFlow."""
    x = tf.cast(x, tf.float32)
    mean, variance = tf.nn.moments(x, axes=list(range(x.shape.rank - 1)))
    y = tf.nn.batch_normalization(x, mean, variance, beta, gamma, EPSILON)
    return tf.where(y > 0, y, slope * y), mean, variance


def _loss_and_grads(fn, x, gamma, beta, weights):
    with tf.GradientTape() as tape:
        tape.watch([x, gamma, beta])
        y = fn(x, gamma, beta)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights)
    return [y] + tape.gradient(loss, [x, gamma, beta])


def _close(got, expected, rtol, name):
    got, expected = (np.asarray(tf.cast(t, tf.float32)) for t in (got, expected))
    np.testing.assert_allclose(got, expected, atol=rtol * np.abs(expected).max(), err_msg=name)


# 80 channels: a 64-channel chunk and a 16-wide vector; 20: a vector and a remainder of 4
# (the scalar loop). (34, 8, 8, 80): 2176 rows, 9 fixed blocks of at most 256 rows, their
# partial sums combined.
@pytest.mark.parametrize("shape", [(16, 4, 4, 80), (6, 3, 5, 20), (34, 8, 8, 80)])
@pytest.mark.parametrize("slope", [1.0, 0.0, 0.2])
def test_forward_and_gradients_match_tensorflow(native, shape, slope):
    x, gamma, beta, weights = _inputs(shape, seed=len(shape) + int(10 * slope))
    y, mean, variance = native.batch_norm(x, gamma, beta, EPSILON, slope=slope)
    expected_y, expected_mean, expected_variance = _reference(x, gamma, beta, slope)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(variance, expected_variance, rtol=1e-5)  # biased
    _close(y, expected_y, 1e-2, "y")  # bfloat16 output: 8 bits of mantissa

    reference = _loss_and_grads(lambda *a: _reference(*a, slope)[0], x, gamma, beta, weights)
    direct = _loss_and_grads(lambda *a: native.batch_norm(*a, EPSILON, slope=slope)[0],
                             x, gamma, beta, weights)

    def applied(x, gamma, beta):  # the path of an activation layer after the batch norm
        _, mean, variance = native.batch_norm(x, gamma, beta, EPSILON)
        return native.batch_norm_apply(x, mean, variance, gamma, beta, EPSILON, slope)

    through_apply = _loss_and_grads(applied, x, gamma, beta, weights)
    for got in (direct, through_apply):
        for name, a, b, rtol in zip(["y", "dx", "dgamma", "dbeta"], got, reference,
                                    [1e-2, 2e-2, 1e-3, 1e-4]):
            _close(a, b, rtol, name)


def test_results_are_the_same_every_run(native):
    x, gamma, beta, weights = _inputs((32, 8, 8, 64), seed=3)
    runs = [_loss_and_grads(lambda *a: native.batch_norm(*a, EPSILON, slope=0.2)[0],
                            x, gamma, beta, weights) for _ in range(2)]
    for a, b in zip(*runs):
        np.testing.assert_array_equal(np.asarray(tf.cast(a, tf.float32)),
                                      np.asarray(tf.cast(b, tf.float32)))


def test_bad_shapes_say_what_was_wrong(native):
    x, gamma, beta, _ = _inputs((4, 2, 2, 8), seed=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="input 1 must be a vector of 8"):
        native.batch_norm(x, gamma[:5], beta, EPSILON)
    with pytest.raises(tf.errors.InvalidArgumentError, match="non-empty"):
        native.batch_norm(x[:0], gamma, beta, EPSILON)


def _train_step_graph(model, x):
    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.cast(model(x, training=True), tf.float32))
        return tape.gradient(loss, model.trainable_variables)

    return step.get_concrete_function(x).graph


def _block_model(activation):
    inputs = keras.Input((4, 4, 32))
    x = fast_layers.BatchNormalization(name="bn")(inputs)
    x = activation(x)
    return keras.Model(inputs, keras.layers.Conv2D(8, 3, name="conv")(x))


@pytest.mark.parametrize("activation,slope", [
    (lambda: fast_layers.LeakyReLU(negative_slope=0.2), 0.2), (fast_layers.ReLU, 0.0)])
def test_an_activation_after_the_batch_norm_applies_it_in_one_op(native, bfloat16_policy,
                                                                 activation, slope):
    model = _block_model(activation())
    x = tf.random.stateless_normal([8, 4, 4, 32], seed=[1, 2])
    ops = _train_step_graph(model, x).get_operations()
    types = collections.Counter(op.type for op in ops)
    applied = [op for op in ops if op.type == "DcganBatchNormApply"]
    assert len(applied) == 1 and applied[0].get_attr("slope") == pytest.approx(slope)
    normed = [op for op in ops if op.type == "DcganBatchNorm"]
    assert len(normed) == 1 and not normed[0].outputs[0].consumers()  # y is never made
    # One gradient op, through the statistics; no separate batch norm or activation.
    assert types["DcganBatchNormGrad"] == 1
    assert not [t for t in types if "FusedBatchNorm" in t or "Relu" in t]

    # The same values as TensorFlow's ops (the native op turned off).
    fused = _loss_and_weights(model, x)
    with _tensorflows_ops():
        plain = _loss_and_weights(model, x)
    for a, b in zip(fused, plain):
        _close(a, b, 2e-2, "gradient")


def _loss_and_weights(model, x):
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.cast(model(x, training=True), tf.float32))
    return tape.gradient(loss, model.trainable_variables)


def test_each_replica_fuses_its_own_block(native, bfloat16_policy):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = _block_model(fast_layers.LeakyReLU(negative_slope=0.2))
    x = tf.random.stateless_normal([8, 4, 4, 32], seed=[1, 2])

    @tf.function
    def step(x):
        def replica(x):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.cast(model(x, training=True), tf.float32))
            return tape.gradient(loss, model.trainable_variables)
        return strategy.run(replica, args=(x,))

    types = collections.Counter(op.type for op in step.get_concrete_function(x).graph
                                .get_operations())
    assert types["DcganBatchNormApply"] == 2 and types["DcganBatchNormGrad"] == 2


def test_not_used_under_xla_in_float32_or_when_turned_off(native, monkeypatch):
    x = tf.zeros([4, 2, 2, 8], tf.bfloat16)
    assert native_ops.usable(x) and not native_ops.usable(tf.cast(x, tf.float32))

    @tf.function(jit_compile=True)
    def compiled(x):
        assert not native_ops.usable(x)
        return x

    compiled(x)
    monkeypatch.setenv("DCGAN_KERAS_NATIVE_OPS", "0")
    monkeypatch.setattr(native_ops, "_loaded", {})
    assert native_ops.library() is None and native_ops.error() == "DCGAN_KERAS_NATIVE_OPS=0"
    assert not native_ops.usable(x)


def test_the_cache_file_follows_the_source_and_tensorflow(tmp_path, monkeypatch):
    monkeypatch.setenv("DCGAN_KERAS_CACHE", str(tmp_path))
    first = native_ops.library_path("/usr/bin/g++")
    assert first.startswith(str(tmp_path / "native")) and first.endswith(".so")
    assert native_ops.library_path("/usr/bin/g++") == first
    assert native_ops.library_path("/usr/bin/clang++") != first
    edited = tmp_path / "ops.cc"
    edited.write_text(open(native_ops.SOURCE).read() + "\n// edited\n")
    monkeypatch.setattr(native_ops, "SOURCE", str(edited))
    assert native_ops.library_path("/usr/bin/g++") != first
    edited_path = native_ops.library_path("/usr/bin/g++")
    monkeypatch.setattr(tf, "__version__", "0.0.0")
    assert native_ops.library_path("/usr/bin/g++") not in (first, edited_path)


def test_a_failed_build_says_why_and_leaves_no_library(tmp_path, monkeypatch):
    monkeypatch.setenv("DCGAN_KERAS_CACHE", str(tmp_path))
    broken = tmp_path / "broken-c++"
    broken.write_text("#!/bin/sh\necho 'In file included from x.h:1,' >&2\n"
                      "echo 'x.h:2:3: error: no such thing' >&2\necho '  |   ^' >&2\nexit 3\n")
    broken.chmod(0o755)
    monkeypatch.setenv("CXX", str(broken))
    with pytest.raises(native_ops.NativeOpError, match=r"failed \(3\): x.h:2:3: error: no such thing$"):
        native_ops.build()
    assert not [f for f in os.listdir(tmp_path / "native") if f.endswith((".so", ".tmp"))]
    monkeypatch.setattr(native_ops, "_loaded", {})
    if native_ops.disabled_reason() is None:  # falls back to TensorFlow's ops
        assert native_ops.library() is None and "no such thing" in native_ops.error()


def test_avx512_fp16_cpus_build_without_it(monkeypatch):
    monkeypatch.delenv("DCGAN_KERAS_AMX", raising=False)
    monkeypatch.setattr(native_ops, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert native_ops.compile_flags() == native_ops.FLAGS
    without = native_ops.library_path("/usr/bin/g++")
    monkeypatch.setattr(native_ops, "cpu_flags",
                        lambda: {"avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16"})
    assert native_ops.compile_flags() == native_ops.FLAGS + ["-mno-avx512fp16"]
    assert native_ops.library_path("/usr/bin/g++") != without


def test_amx_hidden_is_a_cpu_without_it(monkeypatch):
    """DCGAN_KERAS_AMX=0: the flags, the build and the layers' choices of a CPU without AMX
    (the Zen 4 paths, run on an AMX Xeon)."""
    from dcgan_keras.utils import cpu
    monkeypatch.setattr(cpu, "_cpuinfo", lambda field: "avx512f avx512_bf16 amx_bf16 amx_tile amx_int8")
    monkeypatch.delenv("DCGAN_KERAS_AMX", raising=False)
    assert {"amx_bf16", "amx_tile"} <= cpu.cpu_flags() and not cpu.amx_hidden()
    assert native_ops.compile_flags() == native_ops.FLAGS
    with_amx = native_ops.library_path("/usr/bin/g++")
    assert fast_layers.max_matmul_side(cpu.cpu_flags()) == 4
    assert fast_layers.padded_s2d_sides(cpu.cpu_flags()) == (16, 32)
    monkeypatch.setenv("DCGAN_KERAS_AMX", "0")
    assert cpu.cpu_flags() == {"avx512f", "avx512_bf16"} and cpu.amx_hidden()
    assert native_ops.compile_flags() == native_ops.FLAGS + [
        "-mno-amx-tile", "-mno-amx-bf16", "-mno-amx-int8"]
    assert native_ops.library_path("/usr/bin/g++") != with_amx
    assert fast_layers.max_matmul_side(cpu.cpu_flags()) == 0
    assert fast_layers.padded_s2d_sides(cpu.cpu_flags()) == ()
    monkeypatch.setenv("DCGAN_KERAS_AMX", "1")
    assert "amx_bf16" in cpu.cpu_flags()
    # Without AMX there is nothing to hide: the build's flags stay those of the CPU.
    monkeypatch.setattr(cpu, "_cpuinfo", lambda field: "avx512f avx512_bf16")
    monkeypatch.setenv("DCGAN_KERAS_AMX", "0")
    assert not cpu.amx_hidden() and native_ops.compile_flags() == native_ops.FLAGS


_NO_AMX_SCRIPT = """
import json
import tensorflow as tf
from dcgan_keras.models import fast_layers, native_ops
lib = native_ops.library()
a = tf.zeros([1024, 256], tf.bfloat16)
b = tf.zeros([256, 512], tf.bfloat16)
print(json.dumps({"error": native_ops.error(), "max_matmul_side": fast_layers.MAX_MATMUL_SIDE,
                  "padded": list(fast_layers.PADDED_S2D_SIDES),
                  "ops": sorted(n for n in dir(lib) if n.startswith("dcgan_") and "eager" not in n),
                  "kernel_grad": native_ops.kernel_grad_takes(16, 16, 64, 128),
                  "mat_mul": native_ops.matmul_runs(a, b)}))
"""


def test_with_amx_hidden_the_library_has_no_amx_ops(native, tmp_path):
    """A build with DCGAN_KERAS_AMX=0 is a CPU without AMX's: the AVX512-BF16 ops and none of
    the AMX ones, which the layers then do not ask for."""
    import json
    import subprocess
    import sys
    from testutil import REPO
    env = dict(os.environ, DCGAN_KERAS_AMX="0", DCGAN_KERAS_CACHE=str(tmp_path),
               TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", _NO_AMX_SCRIPT], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["error"] is None
    assert {"dcgan_batch_norm", "dcgan_batch_norm_grad", "dcgan_im2_col", "dcgan_col2_im",
            "dcgan_adam", "dcgan_logit"} <= set(got["ops"])
    assert not [op for op in got["ops"] if op in {
        "dcgan_mat_mul", "dcgan_kernel_grad", "dcgan_conv_transpose", "dcgan_conv_mat_mul",
        "dcgan_conv_few_channels", "dcgan_padded_kernels", "dcgan_activation_kernel_grad"}]
    assert got["max_matmul_side"] == 0 and got["padded"] == []
    assert got["kernel_grad"] is False and got["mat_mul"] is False


def test_a_compiler_failure_is_told_by_its_first_error():
    assert native_ops.first_error("a.h:1: note: x\nb.cc:2: error: bad\nc: error: worse\n  ^\n") \
        == "b.cc:2: error: bad"
    assert native_ops.first_error("\nld: cannot find -ltensorflow\n\n") == "ld: cannot find -ltensorflow"
    assert native_ops.first_error("") == "(no output)"


# 4096 + 4103 values: two of the op's chunks, the second ending in a remainder of 7.
@pytest.mark.parametrize("shape", [(2, 8199), (3, 5, 7)])
@pytest.mark.parametrize("slope", [0.2, 0.01])
def test_leaky_relu_gradient_is_tensorflows_bit_for_bit(native, shape, slope):
    rng = np.random.default_rng(4)
    y = rng.normal(0.0, 1.0, shape)
    y[..., ::5] = 0.0  # the gradient at 0 is the slope's, as TensorFlow's
    y, dy = (tf.constant(v, tf.bfloat16) for v in (y, rng.normal(0.0, 3.0, shape)))
    got = native.activation_grad(dy, y, slope)
    expected = tf.raw_ops.LeakyReluGrad(gradients=dy, features=y, alpha=slope)
    assert got.dtype == tf.bfloat16 and got.shape == y.shape
    np.testing.assert_array_equal(np.asarray(tf.cast(got, tf.float32)),
                                  np.asarray(tf.cast(expected, tf.float32)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="dy and y must have one shape"):
        native.activation_grad(dy[:1], y, slope)


def test_a_leaky_relu_without_batch_norm_takes_its_gradient_natively(native, bfloat16_policy):
    inputs = keras.Input((6, 6, 3))
    x = fast_layers.LeakyReLU(negative_slope=0.2)(keras.layers.Conv2D(16, 3)(inputs))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3)(x))
    x = tf.random.stateless_normal([8, 6, 6, 3], seed=[3, 4])
    types = collections.Counter(op.type for op in _train_step_graph(model, x).get_operations())
    assert types["DcganActivationGrad"] == 1 and not types["LeakyReluGrad"]
    fused = _loss_and_weights(model, x)
    with _tensorflows_ops():
        plain = _loss_and_weights(model, x)
    for a, b in zip(fused, plain):  # the same op values: the same gradients
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _tensorflow_col2im(cols):
    """conv_transpose's col2im in TensorFlow's ops (the native op turned off)."""
    _, h, w, c16 = cols.shape
    c = c16 // 16
    # conv_transpose with the identity kernel: its matmul's columns are `cols` (in the
    # (a, b, dh, dw, c) order of TensorFlow's path), so its col2im sees exactly them.
    kernel = tf.reshape(tf.eye(16 * c, dtype=cols.dtype), [4, 4, c, 16 * c])
    with _tensorflows_ops():
        return fast_layers.conv_transpose(cols, kernel)


# 3 channels (spans of 6, one masked vector: G's output, D's first input gradient), 1, 20
# (spans of 40: two vectors and a masked 8); h != w.
@pytest.mark.parametrize("shape", [(2, 4, 3, 48), (2, 3, 2, 16), (3, 2, 5, 320)])
def test_col2im_sums_the_overlapping_patches(native, shape):
    rng = np.random.default_rng(5)
    cols = tf.constant(rng.normal(0.0, 1.0, shape), tf.bfloat16)
    got = native.col2im(cols)
    n, h, w, c16 = shape
    assert got.dtype == tf.bfloat16 and got.shape == (n, 2 * h, 2 * w, c16 // 16)
    # float32 sums of the bfloat16 entries, rounded once
    expected = tf.cast(_tensorflow_col2im(tf.cast(cols, tf.float32)), tf.bfloat16)
    np.testing.assert_array_equal(np.asarray(tf.cast(got, tf.float32)),
                                  np.asarray(tf.cast(expected, tf.float32)))
    # its gradient routes each output's gradient to the entries summed into it
    weights = tf.constant(rng.normal(0.0, 1.0, got.shape), tf.float32)
    grads = []
    for fn in (native.col2im, _tensorflow_col2im):
        with tf.GradientTape() as tape:
            tape.watch(cols)
            loss = tf.reduce_sum(tf.cast(fn(cols), tf.float32) * weights)
        grads.append(np.asarray(tf.cast(tape.gradient(loss, cols), tf.float32)))
    np.testing.assert_array_equal(grads[0], grads[1])
    assert np.count_nonzero(grads[0]) > 0.5 * grads[0].size


def test_col2im_says_what_shape_it_needs(native):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[N, h, w, 16 \* channels\]"):
        native.col2im(tf.zeros([2, 3, 3, 20], tf.bfloat16))


def _tensorflow_patches(x):
    with _tensorflows_ops():
        return fast_layers._patches(x)


@pytest.mark.parametrize("shape", [(2, 4, 6, 3), (3, 8, 4, 40)])
def test_im2col_copies_each_patch(native, shape):
    rng = np.random.default_rng(6)
    x = tf.constant(rng.normal(0.0, 1.0, shape), tf.bfloat16)
    got = native.im2col(x)
    n, h, w, c = shape
    assert got.shape == (n, h // 2, w // 2, 16 * c)
    np.testing.assert_array_equal(  # a copy: exactly TensorFlow's pad + gather
        np.asarray(tf.cast(tf.reshape(got, [-1, 16 * c]), tf.float32)),
        np.asarray(tf.cast(_tensorflow_patches(x), tf.float32)))
    # its gradient adds each patch entry back to its pixel: float32 sums rounded once
    weights = tf.constant(rng.normal(0.0, 1.0, got.shape), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(tf.cast(native.im2col(x), tf.float32) * weights)
    grad = tape.gradient(loss, x)
    x32 = tf.cast(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x32)
        loss = tf.reduce_sum(tf.reshape(_tensorflow_patches(x32), got.shape) * weights
                             .numpy().astype(np.float32).astype(
                                 tf.bfloat16.as_numpy_dtype).astype(np.float32))
    expected = tf.cast(tape.gradient(loss, x32), tf.bfloat16)
    np.testing.assert_array_equal(np.asarray(tf.cast(grad, tf.float32)),
                                  np.asarray(tf.cast(expected, tf.float32)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="even H and W"):
        native.im2col(x[:, :3])


def _bits(t):
    t = tf.convert_to_tensor(t)
    return np.asarray(tf.bitcast(t, tf.uint16 if t.dtype == tf.bfloat16 else tf.uint32))


def _assert_rounded_once(got, expected, scale):
    """got (bfloat16) is a float32 sum rounded once to bfloat16 (2^-9 of the value), in
    whatever order, of the float64 `expected`, whose terms' magnitudes sum to `scale`; and
    it is not mostly zeros."""
    error = np.abs(np.asarray(tf.cast(got, tf.float64)) - expected)
    assert np.all(error <= 2.0 ** -8 * scale), (error / np.maximum(scale, 1e-30)).max()
    assert np.count_nonzero(np.asarray(tf.cast(got, tf.float32))) > 0.99 * got.shape.num_elements()


def test_casts_are_tensorflows_bit_for_bit(native):
    rng = np.random.default_rng(7)
    ties = np.array([0x3F808000, 0x3F818000, 0x3F807FFF, 0x3F808001, 0x7F7FFFFF, 0x00008000,
                     0x80018000], np.uint32).view(np.float32)  # halfway, either side, max
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-40, -3e-39,
                        1.17e-38, 3.4e38, -3.4e38], np.float32)
    x = np.concatenate([rng.normal(0, 1, 9000) * 10.0 ** rng.integers(-30, 30, 9000),
                        rng.normal(0, 0.02, 1000), ties, special]).astype(np.float32)
    rng.shuffle(x)  # specials in the vector loop and in the remainder of 7 (10018 values)
    x = tf.constant(x[:10018].reshape(2, 5009))
    y = native.cast(x, tf.bfloat16)
    assert y.dtype == tf.bfloat16 and y.shape == x.shape
    np.testing.assert_array_equal(_bits(y), _bits(tf.cast(x, tf.bfloat16)))
    back = native.cast(y, tf.float32)
    assert back.dtype == tf.float32
    np.testing.assert_array_equal(_bits(back), _bits(tf.cast(y, tf.float32)))
    # other casts are TensorFlow's
    assert native.cast(tf.constant([1.5]), tf.float16).dtype == tf.float16
    # the gradients are the casts back, as TensorFlow's
    finite = tf.constant(rng.normal(0, 1, [3, 37]), tf.float32)
    weights = tf.constant(rng.normal(0, 1, [3, 37]), tf.float32)
    grads = []
    for fn in (native.cast, tf.cast):
        with tf.GradientTape() as tape:
            tape.watch(finite)
            half = fn(finite, tf.bfloat16)
            with tf.GradientTape() as inner:
                inner.watch(half)
                loss = tf.reduce_sum(fn(half, tf.float32) * weights)
            d_half = inner.gradient(loss, half)
        grads.append((d_half, tape.gradient(half, finite, output_gradients=d_half)))
    (native_half, native_full), (tf_half, tf_full) = grads
    assert native_half.dtype == tf.bfloat16 and native_full.dtype == tf.float32
    np.testing.assert_array_equal(_bits(native_half), _bits(tf_half))
    np.testing.assert_array_equal(_bits(native_full), _bits(tf_full))


@pytest.fixture
def amx(native):
    if not hasattr(native.library(), "dcgan_kernel_grad"):
        pytest.skip("the CPU has no AMX: the native kernel gradient is not built")
    return native


# (x's shape, C'): one panel and one column block of 256, h != w; two column blocks of each
# kh and the image border on every side; three panels of 8 images (the last partial) in
# each half; one image (the second half empty).
@pytest.mark.parametrize("shape,c_out", [((4, 8, 16, 32), 32), ((6, 16, 16, 64), 96),
                                         ((40, 16, 16, 32), 64), ((1, 16, 16, 32), 32),
                                         # an image's channels: RGB at 64x64 (one image a
                                         # panel), 1 with w = 16 (two rows a tile), 4 with
                                         # w = 48 (rows across tiles); one image
                                         ((3, 64, 64, 3), 64), ((20, 32, 32, 1), 32),
                                         ((4, 8, 96, 4), 32), ((1, 16, 16, 3), 64),
                                         # output rows of whole tiles (w a multiple of
                                         # 32): the patch rows read from the planes as
                                         # they are; 1 channel, and 4 with two tiles a row
                                         ((2, 64, 64, 1), 32), ((3, 4, 128, 4), 32),
                                         # 4x4 outputs (D's last layer, G's first): a
                                         # tile's 32 pixels take two images; halves of 3
                                         # images made 4 and 2; two panels a half (32 + 4
                                         # images); one tile (the second half empty);
                                         # 2x2 outputs, 8 images a tile
                                         ((6, 8, 8, 64), 64), ((72, 8, 8, 32), 32),
                                         ((2, 8, 8, 32), 32), ((16, 4, 4, 32), 64)])
def test_the_amx_kernel_gradient_is_the_patches_product(amx, shape, c_out):
    rng = np.random.default_rng(8)
    n, h, w, c = shape
    x = tf.constant(rng.normal(0.0, 1.0, shape), tf.bfloat16)
    dy = tf.constant(rng.normal(0.0, 1.0, (n, h // 2, w // 2, c_out)), tf.bfloat16)
    assert amx.kernel_grad_runs(x, dy)
    got = amx.kernel_grad(x, dy)
    assert got.dtype == tf.bfloat16 and got.shape == (4, 4, c, c_out)
    patches = np.asarray(_tensorflow_patches(tf.cast(x, tf.float32)), np.float64)
    dy2 = np.asarray(tf.cast(dy, tf.float32), np.float64).reshape(-1, c_out)
    expected = (patches.T @ dy2).reshape(got.shape)
    scale = (np.abs(patches).T @ np.abs(dy2)).reshape(got.shape)
    _assert_rounded_once(got, expected, scale)
    # the same bits every run
    np.testing.assert_array_equal(_bits(amx.kernel_grad(x, dy)), _bits(got))


def test_the_amx_kernel_gradient_says_what_shapes_it_takes(amx, monkeypatch):
    assert amx.amx_granted()
    assert amx.kernel_grad_takes(16, 16, 64, 128)
    assert amx.kernel_grad_takes(32, 32, 3, 64)  # D's first layer
    assert not amx.kernel_grad_takes(32, 32, 6, 64)
    assert not amx.kernel_grad_takes(16, 16, 64, 100)
    # 16 output pixels an image: with a batch whose pixels fill whole tiles of 32
    assert amx.kernel_grad_takes(4, 4, 256, 512, n=128)
    assert amx.kernel_grad_takes(2, 2, 256, 512, n=8)
    assert not amx.kernel_grad_takes(4, 4, 256, 512)  # the batch unknown
    assert not amx.kernel_grad_takes(4, 4, 256, 512, n=3)
    assert not amx.kernel_grad_takes(2, 2, 256, 512, n=4)
    assert not amx.kernel_grad_takes(4, 4, 3, 64, n=128)  # not with an image's channels
    assert not amx.kernel_grad_takes(3, 4, 32, 32, n=32)  # 12 pixels do not divide 32
    assert not amx.kernel_grad_takes(8, 5, 32, 32)  # an odd W/2
    assert not amx.kernel_grad_takes(32, 32, 64, 128)  # beyond the sizes measured
    assert not amx.kernel_grad_takes(64, 64, 3, 64)
    with pytest.raises(tf.errors.InvalidArgumentError, match="C a multiple of 32 or at most 4"):
        amx.kernel_grad(tf.zeros([4, 8, 8, 6], tf.bfloat16), tf.zeros([4, 4, 4, 32], tf.bfloat16))
    with pytest.raises(tf.errors.InvalidArgumentError, match="H W / 4 a multiple of 32"):
        amx.kernel_grad(tf.zeros([3, 8, 8, 32], tf.bfloat16), tf.zeros([3, 4, 4, 32], tf.bfloat16))
    with pytest.raises(tf.errors.InvalidArgumentError, match="H W / 4 a multiple of 32"):
        amx.kernel_grad(tf.zeros([4, 8, 8, 3], tf.bfloat16), tf.zeros([4, 4, 4, 32], tf.bfloat16))
    # a Linux that does not hand out AMX's tiles (before 5.16): the layers' other paths
    monkeypatch.setattr(native_ops, "amx_granted", lambda: False)
    assert not amx.kernel_grad_takes(16, 16, 64, 128)


# RGB at 64x64 to 64 channels (D's first layer); 1 channel, 80 outputs (4 + 1 tiles of 16,
# the last pixel block partial: 3 x 5 x 3 pixels); 4 channels, 16 outputs, h != w.
@pytest.mark.parametrize("shape,c_out", [((2, 64, 64, 3), 64), ((3, 10, 6, 1), 80),
                                         ((2, 8, 12, 4), 16)])
@pytest.mark.parametrize("slope", [0.2, 1.0])
def test_the_few_channel_convolution_is_conv2d_then_the_activation(amx, shape, c_out, slope):
    rng = np.random.default_rng(14)
    x = tf.constant(rng.normal(0.0, 1.0, shape), tf.bfloat16)
    kernel = tf.constant(rng.normal(0.0, 0.2, (4, 4, shape[-1], c_out)), tf.bfloat16)
    assert amx.conv_few_channels_runs(x, c_out)
    got = amx.conv_few_channels(x, kernel, slope)
    z = tf.nn.conv2d(tf.cast(x, tf.float64), tf.cast(kernel, tf.float64), 2, "SAME")
    expected = np.asarray(tf.where(z > 0, z, slope * z))
    assert got.dtype == tf.bfloat16 and got.shape == expected.shape
    scale = np.asarray(tf.nn.conv2d(tf.abs(tf.cast(x, tf.float64)),
                                    tf.abs(tf.cast(kernel, tf.float64)), 2, "SAME"))
    error = np.abs(np.asarray(tf.cast(got, tf.float64)) - expected)
    assert np.all(error <= 2.0 ** -8 * scale), error.max()  # one bfloat16 rounding
    np.testing.assert_array_equal(_bits(amx.conv_few_channels(x, kernel, slope)), _bits(got))
    assert not amx.conv_few_channels_runs(x, 24)
    with pytest.raises(tf.errors.InvalidArgumentError, match="C' a multiple of 16"):
        amx.conv_few_channels(x, kernel[..., :8], slope)


def test_g_output_layers_input_gradient_is_the_few_channel_convolution(amx, bfloat16_policy,
                                                                      monkeypatch):
    """G's output layer (to 3 channels): its input gradient, a convolution of the image's
    gradient, is `conv_few_channels` where it runs, with oneDNN's values up to bfloat16
    rounding."""
    layer = fast_layers.Conv2DTranspose(3, 4, strides=2, padding="same", use_bias=False)
    x = tf.random.stateless_normal([4, 16, 16, 64], seed=[9, 10])
    layer.build(x.shape)
    dy = tf.random.stateless_normal([4, 32, 32, 3], seed=[11, 12])

    @tf.function
    def input_gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
        return tape.gradient(y, x, output_gradients=tf.cast(dy, y.dtype))

    types = collections.Counter(
        op.type for op in input_gradient.get_concrete_function(x).graph.get_operations())
    assert types["DcganConvFewChannels"] == 1
    native = np.asarray(tf.cast(input_gradient(x), tf.float32))
    monkeypatch.setattr(native_ops, "conv_few_channels_runs", lambda *a: False)
    onednn = np.asarray(tf.cast(tf.function(input_gradient.python_function)(x), tf.float32))
    np.testing.assert_allclose(native, onednn, atol=0.01 * np.abs(onednn).max())


# An image's 3 channels (two images a half) and 1 (one image: the second half empty); 3 at
# 64x64, where an output row fills a tile.
@pytest.mark.parametrize("shape,c_out", [((4, 32, 32, 3), 64), ((1, 16, 16, 1), 32),
                                         ((2, 64, 64, 3), 64)])
def test_the_activation_kernel_gradient_is_the_two_ops_bit_for_bit(amx, shape, c_out):
    rng = np.random.default_rng(12)
    n, h, w, c = shape
    x = tf.constant(rng.normal(0.0, 1.0, shape), tf.bfloat16)
    out = (n, h // 2, w // 2, c_out)
    y = rng.normal(0.0, 1.0, out)
    y[..., ::7] = 0.0  # the gradient at 0 is the slope's
    y, dy = tf.constant(y, tf.bfloat16), tf.constant(rng.normal(0.0, 1.0, out), tf.bfloat16)
    assert amx.activation_kernel_grad_runs(x, y)
    got = amx.activation_kernel_grad(x, dy, y, 0.2)
    expected = amx.kernel_grad(x, amx.activation_grad(dy, y, 0.2))
    assert got.shape == (4, 4, c, c_out)
    np.testing.assert_array_equal(_bits(got), _bits(expected))
    assert not np.array_equal(_bits(got), _bits(amx.kernel_grad(x, dy)))  # y matters
    with pytest.raises(tf.errors.InvalidArgumentError, match="dy and y must have one shape"):
        amx.activation_kernel_grad(x, dy, y[:, :-1], 0.2)
    wide = tf.zeros([n, h, w, 32], tf.bfloat16)
    assert not amx.activation_kernel_grad_runs(wide, y)
    with pytest.raises(tf.errors.InvalidArgumentError, match="at most 4 channels"):
        amx.activation_kernel_grad(wide, dy, y, 0.2)


def test_a_few_channel_conv_and_its_leaky_relu_take_one_kernel_gradient(amx, bfloat16_policy,
                                                                         monkeypatch):
    """D's first layer: the LeakyReLU after it runs the native convolution with its
    activation and takes the activation's kernel gradient; the model's gradients are those
    of oneDNN's convolution and the two gradient ops apart, to bfloat16 rounding (the
    forward sums run in another order; the kernel gradient op alone is the two ops' bit for
    bit, above)."""
    inputs = keras.Input((32, 32, 3))
    y = fast_layers.LeakyReLU(negative_slope=0.2)(fast_layers.Conv2D(
        64, 4, strides=2, padding="same", use_bias=False)(inputs))
    model = keras.Model(inputs, fast_layers.Conv2D(32, 4, strides=2, padding="same")(y))
    x = tf.random.stateless_normal([4, 32, 32, 3], seed=[7, 8])
    types = collections.Counter(op.type for op in _train_step_graph(model, x).get_operations())
    assert types["DcganActivationKernelGrad"] == 1 and types["DcganActivationGrad"] == 1
    assert types["DcganConvFewChannels"] == 1
    fused = _loss_and_weights(model, x)
    monkeypatch.setattr(native_ops, "activation_kernel_grad_runs", lambda *a: False)
    types = collections.Counter(op.type for op in _train_step_graph(model, x).get_operations())
    assert types["DcganActivationKernelGrad"] == 0 and types["DcganActivationGrad"] == 1
    assert types["DcganConvFewChannels"] == 0
    _assert_close_to_bfloat16(fused, _loss_and_weights(model, x))


@pytest.mark.parametrize("cls,shape,filters", [
    (keras.layers.Conv2D, (4, 32, 32, 32), 32),
    (keras.layers.Conv2DTranspose, (4, 16, 16, 32), 32),
    (keras.layers.Conv2D, (4, 32, 32, 3), 32),  # D's first layer
    (keras.layers.Conv2DTranspose, (4, 16, 16, 32), 3),  # G's output layer
    (keras.layers.Conv2D, (4, 8, 8, 32), 64),  # D's last layer: 4x4, two images a tile
    (keras.layers.Conv2DTranspose, (4, 4, 4, 64), 32),  # G's first
])
def test_layers_take_the_amx_kernel_gradient_at_any_side(amx, bfloat16_policy, monkeypatch,
                                                         cls, shape, filters):
    """At a low side of 16, where oneDNN's kernel gradient ran before, a 4x4 / stride-2
    layer whose shapes the op takes computes its kernel gradient with it, with Keras'
    values up to bfloat16 rounding; so do the layers on an image's 3 channels, and those
    at a low side of 4 (the matmul path, whose kernel gradient was a matmul of patches)."""
    fast_cls = getattr(fast_layers, cls.__name__)
    calls = []
    original = native_ops.kernel_grad
    monkeypatch.setattr(native_ops, "kernel_grad", lambda *a: calls.append(1) or original(*a))
    (_, expected), (_, got) = keras_and_fast_layer(cls, fast_cls, shape, [8, 9],
                                                   filters=filters, use_bias=False)
    assert calls == [1]
    np.testing.assert_allclose(got, expected, atol=0.02 * np.abs(expected).max())


# (dy's shape, C): D's second layer's input gradient (two images); two runs of 16 a row
# (w = 32); one pair of rows (h = 2) and three 32-channel blocks of C; runs of two rows of
# 8; D's last layer (runs of one image, paired across images; the parity classes
# outermost, its B tiles 4 MB); three pairs of 4x4 images.
@pytest.mark.parametrize("shape,c", [((2, 16, 16, 128), 64), ((3, 4, 32, 64), 32),
                                     ((1, 2, 16, 32), 96), ((2, 8, 8, 32), 32),
                                     ((4, 4, 4, 512), 256), ((6, 4, 4, 32), 64)])
def test_the_amx_transposed_convolution_is_tensorflows_to_one_rounding(amx, shape, c):
    rng = np.random.default_rng(13)
    n, h, w, c_out = shape
    dy = tf.constant(rng.normal(0.0, 1.0, shape), tf.bfloat16)
    kernel = tf.constant(rng.normal(0.0, 0.1, (4, 4, c, c_out)), tf.bfloat16)
    assert amx.conv_transpose_runs(dy, kernel)
    got = amx.conv_transpose(dy, kernel)
    assert got.dtype == tf.bfloat16 and got.shape == (n, 2 * h, 2 * w, c)

    def transposed(a, b):
        return np.asarray(tf.nn.conv2d_transpose(a, b, [n, 2 * h, 2 * w, c], 2, "SAME"))

    dy64, k64 = (tf.cast(t, tf.float64) for t in (dy, kernel))
    expected, scale = transposed(dy64, k64), transposed(tf.abs(dy64), tf.abs(k64))
    _assert_rounded_once(got, expected, scale)
    np.testing.assert_array_equal(_bits(amx.conv_transpose(dy, kernel)), _bits(got))


def test_the_amx_transposed_convolution_says_what_shapes_it_takes(amx, monkeypatch):
    def runs(shape, kernel_shape):
        return amx.conv_transpose_runs(tf.zeros(shape, tf.bfloat16),
                                       tf.zeros(kernel_shape, tf.bfloat16))

    assert runs([8, 16, 16, 128], [4, 4, 64, 128])
    assert runs([8, 8, 8, 256], [4, 4, 128, 256])  # runs of two rows of 8
    assert runs([8, 4, 4, 512], [4, 4, 256, 512])  # D's last layer: runs of one image
    assert not runs([7, 4, 4, 512], [4, 4, 256, 512])  # ... paired, so N even
    assert not runs([8, 4, 12, 128], [4, 4, 64, 128])  # 12 neither a multiple of 16 nor 16's divisor
    assert not runs([8, 16, 16, 128], [4, 4, 48, 128])  # C not a multiple of 32
    assert not runs([8, 16, 16, 100], [4, 4, 64, 100])
    assert not runs([8, 3, 16, 128], [4, 4, 64, 128])  # 3 runs an image: not in pairs
    assert not amx.conv_transpose_runs(tf.zeros([8, 16, 16, 128]), tf.zeros([4, 4, 64, 128]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="an even number of runs"):
        amx.conv_transpose(tf.zeros([2, 4, 12, 64], tf.bfloat16),
                           tf.zeros([4, 4, 32, 64], tf.bfloat16))
    with pytest.raises(tf.errors.InvalidArgumentError, match="an even number of runs"):
        amx.conv_transpose(tf.zeros([3, 4, 4, 64], tf.bfloat16),
                           tf.zeros([4, 4, 32, 64], tf.bfloat16))
    with pytest.raises(tf.errors.InvalidArgumentError, match="C and C' multiples of 32"):
        amx.conv_transpose(tf.zeros([2, 16, 16, 64], tf.bfloat16),
                           tf.zeros([4, 4, 32, 32], tf.bfloat16))
    monkeypatch.setattr(native_ops, "amx_granted", lambda: False)
    assert not runs([8, 16, 16, 128], [4, 4, 64, 128])


@pytest.mark.parametrize("shape,filters", [((2, 32, 32, 64), 128), ((4, 8, 8, 64), 64)])
def test_a_conv_takes_the_amx_transposed_convolution_as_its_input_gradient(
        amx, bfloat16_policy, monkeypatch, shape, filters):
    """D's second layer (32x32x64 -> 16x16x128 at 64x64, oneDNN's convolution forward)
    and its last (8x8 -> 4x4, the matmul path): the input gradient is
    `native_ops.conv_transpose`, with Keras' values to bfloat16 rounding."""
    calls = []
    original = native_ops.conv_transpose
    monkeypatch.setattr(native_ops, "conv_transpose",
                        lambda *a: calls.append(1) or original(*a))
    x = tf.random.stateless_normal(shape, seed=[4, 5])
    kwargs = dict(filters=filters, kernel_size=4, strides=2, padding="same", use_bias=False)
    reference, fast = keras.layers.Conv2D(**kwargs), fast_layers.Conv2D(**kwargs)
    reference.build(x.shape)
    fast.build(x.shape)
    fast.set_weights(reference.get_weights())
    grads = []
    for layer in (reference, fast):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.cast(layer(x), tf.float32) ** 2)
        grads.append(np.asarray(tape.gradient(loss, x), np.float32))
    assert calls == [1]
    np.testing.assert_allclose(grads[1], grads[0], atol=0.02 * np.abs(grads[0]).max())


# (M, K, N): one block of rows and one pair of column tiles; D's last convolution at
# 64x64 (batch 8: patches [128, 4096] x kernel [4096, 512]); 3 blocks of 128 rows, the last
# partial.
@pytest.mark.parametrize("m,k,n", [(32, 32, 32), (128, 4096, 512), (288, 96, 64)])
@pytest.mark.parametrize("transpose_a,transpose_b", [(False, False), (False, True),
                                                     (True, False), (True, True)])
def test_the_amx_matmul_is_the_product_rounded_once(amx, m, k, n, transpose_a, transpose_b):
    rng = np.random.default_rng(12)
    a = tf.constant(rng.normal(0.0, 1.0, (k, m) if transpose_a else (m, k)), tf.bfloat16)
    b = tf.constant(rng.normal(0.0, 1.0, (n, k) if transpose_b else (k, n)), tf.bfloat16)
    assert amx.matmul_runs(a, b, transpose_a, transpose_b)
    got = amx.matmul(a, b, transpose_a, transpose_b)
    assert got.dtype == tf.bfloat16 and got.shape == (m, n)
    a64, b64 = (np.asarray(tf.cast(t, tf.float32), np.float64) for t in (a, b))
    a64, b64 = (a64.T if transpose_a else a64), (b64.T if transpose_b else b64)
    expected, scale = a64 @ b64, np.abs(a64) @ np.abs(b64)
    _assert_rounded_once(got, expected, scale)
    np.testing.assert_array_equal(_bits(amx.matmul(a, b, transpose_a, transpose_b)), _bits(got))
    # its gradient is tf.matmul's, bit for bit
    dc = tf.constant(rng.normal(0.0, 1.0, (m, n)), tf.bfloat16)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([a, b])
        native_c = amx.matmul(a, b, transpose_a, transpose_b)
        tf_c = tf.matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b)
    for g, h in zip(tape.gradient(native_c, [a, b], dc), tape.gradient(tf_c, [a, b], dc)):
        np.testing.assert_array_equal(_bits(g), _bits(h))


def test_the_amx_matmul_says_what_shapes_it_takes(amx, monkeypatch):
    a, b = tf.zeros([64, 96], tf.bfloat16), tf.zeros([96, 32], tf.bfloat16)
    assert amx.matmul_runs(a, b)
    assert amx.matmul_runs(tf.zeros([96, 64], tf.bfloat16), b, transpose_a=True)
    assert not amx.matmul_runs(a[:48], b)  # M not a multiple of 32
    assert not amx.matmul_runs(a, tf.zeros([96, 40], tf.bfloat16))
    assert not amx.matmul_runs(a, b, transpose_b=True)  # K does not match
    assert not amx.matmul_runs(tf.zeros([64, 96]), tf.zeros([96, 32]))  # float32
    with pytest.raises(tf.errors.InvalidArgumentError, match="whole multiples of 32"):
        amx.matmul(a[:48], b)
    monkeypatch.setattr(native_ops, "amx_granted", lambda: False)
    assert not amx.matmul_runs(a, b)


def test_a_conv_at_8x8_runs_its_forward_product_on_the_amx_matmul(amx, bfloat16_policy,
                                                                 monkeypatch):
    """D's last convolution (8x8 -> 4x4, the matmul path): its forward product is the AMX
    matmul of its patches, built in the op (`conv_matmul`), with Keras' values and kernel
    gradient up to bfloat16 rounding; turned off, the im2col op and the AMX matmul, then
    TensorFlow's MatMul again."""
    calls = []
    original = native_ops.conv_matmul
    monkeypatch.setattr(native_ops, "conv_matmul", lambda *a: calls.append(1) or original(*a))
    (_, expected), (y, got) = keras_and_fast_layer(
        keras.layers.Conv2D, fast_layers.Conv2D, (4, 8, 8, 64), [3, 4], filters=64,
        use_bias=False)
    assert calls == [1]
    np.testing.assert_allclose(got, expected, atol=0.02 * np.abs(expected).max())
    model = keras.Sequential([keras.Input((8, 8, 64)),
                              fast_layers.Conv2D(64, 4, strides=2, padding="same")])
    x = tf.random.stateless_normal([4, 8, 8, 64], seed=[1, 2])

    def types():
        return collections.Counter(op.type for op in _train_step_graph(model, x).get_operations())

    assert types()["DcganConvMatMul"] == 1 and types()["DcganIm2Col"] == 0
    monkeypatch.setattr(native_ops, "conv_matmul_runs", lambda *a: False)
    assert types()["DcganMatMul"] == 1 and types()["DcganIm2Col"] == 1
    monkeypatch.setattr(native_ops, "matmul_runs", lambda *a: False)
    assert types()["DcganMatMul"] == 0 and types()["MatMul"] >= 1


# (x's shape, C'): D's last layer's shape (batch 4); 4 output pixels a row (h != w); two
# blocks of 128 rows, the last partial.
@pytest.mark.parametrize("shape,c_out", [((4, 8, 8, 256), 512), ((8, 4, 8, 32), 64),
                                         ((3, 16, 16, 2), 32)])
def test_the_amx_conv_matmul_is_the_matmul_of_the_patches_bit_for_bit(amx, shape, c_out):
    rng = np.random.default_rng(14)
    x = tf.constant(rng.normal(0.0, 1.0, shape), tf.bfloat16)
    kernel = tf.constant(rng.normal(0.0, 1.0, (16 * shape[3], c_out)), tf.bfloat16)
    assert amx.conv_matmul_runs(x, kernel)
    got = amx.conv_matmul(x, kernel)
    assert got.shape == (shape[0], shape[1] // 2, shape[2] // 2, c_out)
    patches = tf.reshape(amx.im2col(x), [-1, 16 * shape[3]])
    expected = tf.reshape(amx.matmul(patches, kernel), got.shape)
    np.testing.assert_array_equal(_bits(got), _bits(expected))
    if shape[0] != 3:  # N H W / 4 a multiple of 32
        assert not amx.conv_matmul_runs(x[:3], kernel)
    assert not amx.conv_matmul_runs(x, kernel[:, :-16])
    with pytest.raises(tf.errors.InvalidArgumentError, match="N H W / 4 a multiple of 32"):
        amx.conv_matmul(tf.zeros([1, 8, 8, 32], tf.bfloat16), tf.zeros([512, 32], tf.bfloat16))
    with pytest.raises(tf.errors.InvalidArgumentError, match="16 C and N' multiples of 32"):
        amx.conv_matmul(tf.zeros([4, 8, 8, 32], tf.bfloat16), tf.zeros([256, 32], tf.bfloat16))


def _padding_of(p):
    """1 on the padding of a padded space-to-depth form of p's shape, 0 inside."""
    n, h, w, c = p.shape
    inside = tf.ones([n, 2 * (h - 1), 2 * (w - 1), c // 4], tf.bfloat16)
    return 1 - native_ops.padded_space_to_depth(inside)


@pytest.mark.parametrize("padded_x,padded_y", [(False, True), (True, False), (True, True)])
@pytest.mark.parametrize("shape", [(3, 4, 6, 32), (2, 16, 16, 128)])
def test_the_batch_norm_reads_and_writes_the_padded_space_to_depth_form(native, shape,
                                                                        padded_x, padded_y):
    """x given as padded_space_to_depth(x) (padded_x: its padding not read, here noise), y
    written as padded_space_to_depth(y) (padded_y: zeros on the padding): the statistics,
    y and the gradients (dy read in y's form, its padding ignored; dx written in x's form,
    zeros on the padding) are the plain ops' in that form, bit for bit."""
    x, gamma, beta, _ = _inputs(shape, seed=11)
    rng = np.random.default_rng(3)
    form = native.padded_space_to_depth
    xp = form(x)
    noise = tf.constant(rng.normal(0.0, 5.0, xp.shape), tf.bfloat16)
    x_in = xp + noise * _padding_of(xp) if padded_x else x
    plain_y, mean, variance = native.batch_norm(x, gamma, beta, EPSILON, slope=0.2)
    got_y, got_mean, got_variance = native.batch_norm(x_in, gamma, beta, EPSILON, slope=0.2,
                                                      padded_x=padded_x)
    for a, b in ((got_y, plain_y), (got_mean, mean), (got_variance, variance)):
        np.testing.assert_array_equal(_bits(a), _bits(b))
    plain = native.batch_norm_apply(x, mean, variance, gamma, beta, EPSILON, 0.2)
    got = native.batch_norm_apply(x_in, mean, variance, gamma, beta, EPSILON, 0.2,
                                  padded_x=padded_x, padded_y=padded_y)
    np.testing.assert_array_equal(_bits(got), _bits(form(plain) if padded_y else plain))
    dy = tf.constant(rng.normal(0.0, 1.0, plain.shape), tf.bfloat16)
    dy_in = dy
    if padded_y:  # noise on the padding of dy, which is not read
        dy_in = form(dy) + tf.constant(rng.normal(0.0, 5.0, got.shape), tf.bfloat16) * _padding_of(got)
    grads = []
    for args, inputs, out_grad in (((padded_x, padded_y), x_in, dy_in), ((False, False), x, dy)):
        with tf.GradientTape() as tape:
            tape.watch([inputs, gamma, beta])
            _, m, v = native.batch_norm(inputs, gamma, beta, EPSILON, padded_x=args[0])
            y = native.batch_norm_apply(inputs, m, v, gamma, beta, EPSILON, 0.2,
                                        padded_x=args[0], padded_y=args[1])
        grads.append(tape.gradient(y, [inputs, gamma, beta], output_gradients=out_grad))
    expected = [form(grads[1][0]) if padded_x else grads[1][0]] + grads[1][1:]
    for a, b in zip(grads[0], expected):
        np.testing.assert_array_equal(_bits(a), _bits(b))
    assert np.count_nonzero(np.asarray(tf.cast(grads[1][0], tf.float32))) > 0.9 * x.shape.num_elements()
    with pytest.raises(tf.errors.InvalidArgumentError, match="H and W even"):
        native.batch_norm_apply(x[:, :3], mean, variance, gamma, beta, EPSILON, 0.2,
                                padded_y=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="padded space-to-depth form"):
        native.batch_norm(x[..., :30], gamma[:30], beta[:30], EPSILON, padded_x=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="shape of the op's y"):
        native.library().dcgan_batch_norm_grad(plain, x, mean, variance, gamma, beta,
                                               epsilon=EPSILON, slope=0.2, padded_y=True)


@pytest.mark.parametrize("shape,c_out", [((4, 16, 16, 128), 256), ((3, 8, 16, 32), 64),
                                         ((1, 32, 32, 64), 128), ((6, 8, 8, 64), 32)])
def test_the_amx_kernel_gradient_reads_the_padded_form_bit_for_bit(amx, shape, c_out):
    rng = np.random.default_rng(12)
    n, h, w, _ = shape
    x = tf.constant(rng.normal(0.0, 1.0, shape), tf.bfloat16)
    dy = tf.constant(rng.normal(0.0, 1.0, (n, h // 2, w // 2, c_out)), tf.bfloat16)
    got = amx.kernel_grad(amx.padded_space_to_depth(x), dy, padded_s2d=True)
    assert got.shape == (4, 4, shape[3], c_out)
    np.testing.assert_array_equal(_bits(got), _bits(amx.kernel_grad(x, dy)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="C a multiple of 32"):
        amx.kernel_grad(tf.zeros([4, 5, 5, 64], tf.bfloat16), tf.zeros([4, 4, 4, 32], tf.bfloat16),
                        padded_s2d=True)


# D's third layer's kernel; 4 C = 32 (C = 8), one block of rows; C' = 96, three blocks.
@pytest.mark.parametrize("c,c_out", [(128, 256), (8, 32), (32, 96)])
def test_the_padded_kernels_are_the_padded_kernel_and_its_flip_bit_for_bit(amx, c, c_out):
    kernel = tf.constant(np.random.default_rng(13).normal(0, 1, (4, 4, c, c_out)), tf.bfloat16)
    assert amx.padded_kernels_runs(kernel)
    k, flipped = amx.padded_kernels(kernel)
    expected = fast_layers.padded_kernel(kernel)
    np.testing.assert_array_equal(_bits(k), _bits(expected))
    np.testing.assert_array_equal(
        _bits(flipped), _bits(tf.transpose(tf.reverse(expected, [0, 1]), [0, 1, 3, 2])))
    # kernel row (kh, kw) = (2a + dh, 2b + dw) is k's row (a, b, dh, dw), and flipped[a, b]
    # is k[1 - a, 1 - b] transposed
    np.testing.assert_array_equal(_bits(k[1, 0, 3 * c:]), _bits(kernel[3, 1]))
    np.testing.assert_array_equal(_bits(flipped[0, 1]), _bits(tf.transpose(k[1, 0])))
    assert not amx.padded_kernels_runs(tf.zeros([4, 4, 8, 40], tf.bfloat16))
    assert not amx.padded_kernels_runs(tf.zeros([4, 4, 8, 32]))  # float32
    with pytest.raises(tf.errors.InvalidArgumentError, match="whole multiples of 32"):
        amx.padded_kernels(tf.zeros([4, 4, 6, 32], tf.bfloat16))


def _padded_op_counts(model, x, types, attr):
    """Counter of (op type, its padded-form attribute) over the ops of `types` in a train
    step's graph; `attr` for all but DcganKernelGrad, whose attribute is padded_s2d."""
    ops = _train_step_graph(model, x).get_operations()
    return collections.Counter(
        (op.type, op.get_attr("padded_s2d" if op.type == "DcganKernelGrad" else attr))
        for op in ops if op.type in types)


def _assert_close_to_bfloat16(got, expected):
    """Values and gradients equal to bfloat16 rounding (2% of each tensor's largest)."""
    for a, b in zip(got, expected):
        a, b = (np.asarray(tf.cast(t, tf.float32)) for t in (a, b))
        np.testing.assert_allclose(a, b, atol=0.02 * np.abs(b).max())


def test_a_conv_after_a_native_batch_norm_reads_its_padded_form(amx, bfloat16_policy,
                                                                monkeypatch):
    """At the sides of PADDED_S2D_SIDES the Conv2D after a native batch norm + LeakyReLU
    runs on their output in the padded space-to-depth form (applied once more in that form,
    the plain one pruned), its input gradient and the batch norm's gradient in that form;
    the model's values and gradients are the plain path's, to bfloat16 rounding."""
    monkeypatch.setattr(fast_layers, "PADDED_S2D_SIDES", (16,))
    inputs = keras.Input((32, 32, 32))
    y = fast_layers.Conv2D(64, 4, strides=2, padding="same", use_bias=False)(inputs)
    y = fast_layers.LeakyReLU(negative_slope=0.2)(fast_layers.BatchNormalization()(y))
    model = keras.Model(inputs, fast_layers.Conv2D(64, 4, strides=2, padding="same",
                                                   use_bias=False)(y))
    x = tf.random.stateless_normal([4, 32, 32, 32], seed=[5, 6])

    def padded_ops():
        return _padded_op_counts(model, x, ("DcganBatchNormApply", "DcganBatchNormGrad",
                                            "DcganKernelGrad"), "padded_y")

    ops = padded_ops()
    assert ops[("DcganBatchNormApply", True)] == 1
    assert ops[("DcganBatchNormGrad", True)] == 1
    assert ops[("DcganKernelGrad", True)] == 1
    types = collections.Counter(op.type for op in _train_step_graph(model, x).get_operations())
    assert types["DcganPaddedKernels"] == 1 and types["ReverseV2"] == 0
    got = _loss_and_weights(model, x)
    monkeypatch.setattr(fast_layers, "PADDED_S2D_SIDES", ())
    assert padded_ops()[("DcganBatchNormGrad", True)] == 0
    _assert_close_to_bfloat16(got, _loss_and_weights(model, x))
    assert fast_layers.padded_s2d_sides({"avx512_bf16"}) == ()  # measured with AMX only


def test_a_batch_norm_after_a_conv_transpose_reads_its_padded_form(amx, bfloat16_policy,
                                                                   monkeypatch):
    """G's blocks: at the output sides of PADDED_S2D_SIDES the batch norm after a
    Conv2DTranspose takes its output in the padded space-to-depth form (`conv_up_padded`,
    made again; the first pruned), and its gradient gives the transposed convolution's
    gradient in that form; the values and gradients are the plain path's, to bfloat16
    rounding."""
    monkeypatch.setattr(fast_layers, "PADDED_S2D_SIDES", (16,))
    inputs = keras.Input((8, 8, 64))
    y = fast_layers.Conv2DTranspose(32, 4, strides=2, padding="same", use_bias=False,
                                    name="up1")(inputs)
    y = fast_layers.ReLU()(fast_layers.BatchNormalization(name="bn1")(y))
    model = keras.Model(inputs, fast_layers.Conv2DTranspose(32, 4, strides=2, padding="same",
                                                            use_bias=False)(y))
    x = tf.random.stateless_normal([4, 8, 8, 64], seed=[7, 6])

    def padded_ops():
        return _padded_op_counts(model, x, ("DcganBatchNorm", "DcganBatchNormApply",
                                            "DcganBatchNormGrad", "DcganKernelGrad"),
                                 "padded_x")

    ops = padded_ops()
    assert ops[("DcganBatchNorm", True)] == ops[("DcganBatchNormApply", True)] == 1
    assert ops[("DcganBatchNormGrad", True)] == 1 and ops[("DcganKernelGrad", True)] == 1
    # made again in its own layer's name scope, as its gradients: a profile names the layer
    graph = _train_step_graph(model, x)
    remade = [op.name for op in graph.get_operations()
              if op.type == "Conv2D" and op.get_attr("padding") == b"EXPLICIT"]
    assert len(remade) == 1 and "/up1" in remade[0] and "bn1" not in remade[0], remade
    kernel_grads = [op.name for op in graph.get_operations()
                    if op.type == "DcganKernelGrad" and op.get_attr("padded_s2d")]
    assert len(kernel_grads) == 1 and "/up1_" in kernel_grads[0], kernel_grads
    got = _loss_and_weights(model, x)
    monkeypatch.setattr(fast_layers, "PADDED_S2D_SIDES", ())
    assert padded_ops()[("DcganBatchNormGrad", True)] == 0
    _assert_close_to_bfloat16(got, _loss_and_weights(model, x))


_BITS_SCRIPT = """
import hashlib, sys
import numpy as np, tensorflow as tf
from dcgan_keras.models import native_ops
rng = np.random.default_rng(11)
def bf16(*shape):
    return tf.constant(rng.normal(0.0, 1.0, shape), tf.bfloat16)
out = [native_ops.batch_norm(bf16(64, 8, 8, 64), tf.ones([64]), tf.zeros([64]), 1e-5)]
if native_ops.kernel_grad_takes(8, 8, 64, 64) and native_ops.kernel_grad_takes(16, 16, 3, 64):
    out.append(native_ops.kernel_grad(bf16(8, 16, 16, 64), bf16(8, 8, 8, 64)))
    out.append(native_ops.kernel_grad(bf16(8, 32, 32, 3), bf16(8, 16, 16, 64)))
    out.append(native_ops.matmul(bf16(512, 1024), bf16(1024, 64)))
    out.append(native_ops.conv_transpose(bf16(4, 16, 16, 64), bf16(4, 4, 32, 64)))
digest = hashlib.sha256()
for t in tf.nest.flatten(out):
    digest.update(np.asarray(tf.bitcast(t, tf.uint16) if t.dtype == tf.bfloat16 else t).tobytes())
print(len(out), digest.hexdigest())
"""


def test_results_do_not_depend_on_the_thread_count(native):
    """The batch norm's sums run over fixed blocks, the AMX kernel gradient's over two
    fixed halves of the batch, the AMX matmul's over all of K in one order and the AMX
    transposed convolution's over an image at a time: one and two intra-op threads give
    the same bits."""
    import subprocess
    import sys
    from testutil import REPO
    results = []
    for threads in ("1", "2"):
        env = dict(os.environ, TF_NUM_INTRAOP_THREADS=threads, TF_CPP_MIN_LOG_LEVEL="3")
        done = subprocess.run([sys.executable, "-c", _BITS_SCRIPT], capture_output=True,
                              text=True, timeout=300, cwd=REPO, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        results.append(done.stdout.split()[-2:])
    assert results[0] == results[1]
    assert results[0][0] in ("1", "5")  # 5 where the CPU has AMX


# K = 8292: the 64-lane loops and a remainder of 36; 33 blocks of 256 kernel columns.
def test_the_logit_sums_bfloat16_features_in_float32(native):
    rng = np.random.default_rng(6)
    x = tf.constant(rng.normal(0.0, 1.0, (5, 8292)), tf.bfloat16)
    w = tf.constant(rng.normal(0.0, 0.05, (8292, 1)), tf.float32)
    dy = tf.constant(rng.normal(0.0, 2.0, (5, 1)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch([x, w])
        y = native.logit(x, w)
        loss = tf.reduce_sum(y * dy)
    dx, dw = tape.gradient(loss, [x, w])
    x64, w64, dy64 = (np.asarray(tf.cast(t, tf.float64)) for t in (x, w, dy))
    scale = np.abs(x64) @ np.abs(w64)  # the size of the terms each sum adds
    assert y.dtype == tf.float32 and y.shape == (5, 1)
    np.testing.assert_allclose(y, x64 @ w64, atol=1e-6 * scale.max())
    # the float32 product dy w^T rounded to bfloat16, as the cast's gradient rounded it
    assert dx.dtype == tf.bfloat16 and dx.shape == x.shape
    np.testing.assert_array_equal(np.asarray(tf.cast(dx, tf.float32)), np.asarray(
        tf.cast(tf.cast(dy * tf.transpose(w), tf.bfloat16), tf.float32)))
    assert dw.dtype == tf.float32 and dw.shape == w.shape
    np.testing.assert_allclose(dw, x64.T @ dy64, atol=1e-6 * (np.abs(x64.T) @ np.abs(dy64)).max())
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"x \[N, K\] and w \[K, 1\]"):
        native.logit(x, w[:-1])


def test_a_float32_logit_on_bfloat16_features_runs_the_logit_op(native, bfloat16_policy):
    inputs = keras.Input((64,))
    features = keras.layers.Dense(96, name="features")(inputs)  # bfloat16
    logit = fast_layers.Dense(1, use_bias=False, dtype="float32", name="logit")(features)
    model = keras.Model(inputs, logit)
    x = tf.random.stateless_normal([8, 64], seed=[5, 6])
    types = collections.Counter(op.type for op in _train_step_graph(model, x).get_operations())
    assert types["DcganLogit"] == 1 and types["DcganLogitInputGrad"] == 1
    assert types["DcganLogitKernelGrad"] == 1 and not types["DcganToFloat"]
    native_grads = _loss_and_weights(model, x)
    original = native_ops.logit_runs
    native_ops.logit_runs = lambda *args: False
    try:
        plain_grads = _loss_and_weights(model, x)
    finally:
        native_ops.logit_runs = original
    for a, b in zip(native_grads, plain_grads):  # float32 sums in another order
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


# 1 and 2 gradients (G's kernels; D's, used on real and on fake images); 4103 values: a
# chunk and a remainder of 7.
@pytest.mark.parametrize("count", [1, 2])
def test_adam_from_bfloat16_gradients_is_resource_apply_adams_update(native, count):
    rng = np.random.default_rng(13)
    shape = (4103,)
    var, m, v = (tf.Variable(rng.normal(0.0, s, shape).astype(np.float32))
                 for s in (1.0, 0.01, 1e-4))
    v.assign(tf.abs(v))
    mine = [tf.Variable(t) for t in (var, m, v)]
    scalars = dict(beta1_power=0.5 ** 3, beta2_power=0.999 ** 3, lr=2e-4, beta1=0.5,
                   beta2=0.999, epsilon=1e-8)
    for step in range(3):
        grads = [tf.constant(rng.normal(0.0, 0.01, shape), tf.bfloat16) for _ in range(count)]
        # what ran before: each gradient cast to float32, summed, then ResourceApplyAdam
        total = tf.add_n([tf.cast(g, tf.float32) for g in grads])
        tf.raw_ops.ResourceApplyAdam(var=var.handle, m=m.handle, v=v.handle, grad=total,
                                     **scalars)
        new = native.adam(*(t.read_value() for t in mine), grads, **scalars)
        for target, value in zip(mine, new):
            target.assign(value)
    for name, want, got in zip(("var", "m", "v"), (var, m, v), mine):  # bit for bit
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=name)
    with pytest.raises(tf.errors.InvalidArgumentError, match="each gradient and var"):
        native.adam(var, m, v, [grads[0][:-1]], **scalars)
    # which gradients it reads: casts of bfloat16 tensors and their sums, in a graph
    parts = []
    tf.function(lambda a, b: parts.append(native.bfloat16_parts(tf.identity(
        native.cast(a, tf.float32) + native.cast(b, tf.float32)))) or a).get_concrete_function(
        tf.TensorSpec([3], tf.bfloat16), tf.TensorSpec([3], tf.bfloat16))
    assert [p.dtype for p in parts[0]] == [tf.bfloat16] * 2
    assert native.bfloat16_parts(tf.constant([1.0])) is None  # eager: no op to read
