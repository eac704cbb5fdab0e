"""benchmarks/step_profile.py: reading a profile into op classes and products with FLOPs."""
import importlib.util
import os

import keras
import pytest
import tensorflow as tf

from testutil import REPO

_spec = importlib.util.spec_from_file_location(
    "step_profile", os.path.join(REPO, "benchmarks", "step_profile.py"))
step_profile = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(step_profile)


def test_events_are_split_into_graph_name_and_type():
    split = step_profile.split_event
    assert split("StatefulPartitionedCall/gradient_tape/d_1/MatMul_1:_MklMatMul") == (
        "gradient_tape/d_1/MatMul_1", "MatMul")
    assert split("g_1/block1_bn_1/FusedBatchNormV3:_MklNativeFusedBatchNormEx") == (
        "g_1/block1_bn_1/FusedBatchNormV3", "FusedBatchNormEx")
    assert split("ExecutorState::Process") is None
    assert split("MemoryAllocation") is None


@pytest.mark.parametrize("name,op_type,expected", [
    ("discriminator_1/block2_conv_1/Conv2D", "Conv2D", "products"),
    ("gradient_tape/generator_1/block1_deconv_1/MatMul_1", "MatMul", "products"),
    ("discriminator_1/block2_bn_1/FusedBatchNormV3", "FusedBatchNormV3", "BatchNorm"),
    ("gradient_tape/d/lrelu/LeakyReluGrad", "LeakyReluGrad", "activations"),
    ("generator_1/output_tanh_1/Tanh", "Tanh", "activations"),
    ("gradient_tape/d/block3_conv_1/GatherV2", "GatherV2", "gathers and layout copies"),
    ("generator_1/block1_deconv_1/DepthToSpace", "DepthToSpace", "gathers and layout copies"),
    ("generator_1/block1_deconv_1/DcganCol2Im", "DcganCol2Im", "gathers and layout copies"),
    ("gradient_tape/d/block3_conv_1/DcganIm2Col", "DcganIm2Col", "gathers and layout copies"),
    ("gradient_tape/d/block1_lrelu/DcganActivationGrad", "DcganActivationGrad", "activations"),
    ("gradient_tape/g/block3_relu_1/DcganBatchNormGrad", "DcganBatchNormGrad", "BatchNorm"),
    ("d/block4_conv_1/DcganToBfloat16", "DcganToBfloat16", "casts"),
    ("gradient_tape/d/block4_conv_1/DcganToFloat", "DcganToFloat", "casts"),
    ("gradient_tape/d/block3_conv_1/ArithmeticOptimizer/AddOpsRewrite_add", "AddN", "adds"),
    ("generator_1/project_1/Cast/Cast", "Cast", "casts"),
    ("gradient_tape/d/block2_conv_1/DcganKernelGrad", "DcganKernelGrad", "products"),
    ("adam_1/ResourceApplyAdam_3", "ResourceApplyAdam", "Adam"),
    ("adam_1/Pow", "Pow", "Adam"),
    ("IteratorGetNext", "IteratorGetNext", "input pipeline"),
    ("stateless_random_uniform/StatelessRandomUniformV2", "StatelessRandomUniformV2",
     "other ops"),
])
def test_op_classes(name, op_type, expected):
    assert step_profile.op_class(name, op_type) == expected


def test_layers_and_product_kinds_come_from_the_scopes():
    layer_of, kind = step_profile.layer_of, step_profile.product_kind
    assert layer_of("gradient_tape/discriminator_5/block2_conv_1/Conv2D") == (
        "discriminator/block2_conv")
    assert layer_of("generator_1/project_1/MatMul") == "generator/project"
    assert layer_of("MatMul_5") is None
    assert kind("discriminator_3/block2_conv_1/MatMul", "MatMul") == "forward"
    assert kind("generator_1/output_deconv_1/conv_transpose", "Conv2DBackpropInput") == (
        "forward")
    assert kind("gradient_tape/d_1/c_1/Conv2DBackpropInput", "Conv2DBackpropInput") == (
        "input gradient")
    assert kind("gradient_tape/d_1/c_1/Conv2DBackpropFilter", "Conv2DBackpropFilter") == (
        "kernel gradient")
    assert kind("gradient_tape/d_1/c_1/DcganKernelGrad", "DcganKernelGrad") == (
        "kernel gradient")
    assert kind("gradient_tape/d_1/c_1/MatMul_1", "MatMul", transpose_a=True) == (
        "kernel gradient")
    assert kind("gradient_tape/d_1/c_1/MatMul", "MatMul") == "input gradient"


def test_flops_of_matmuls_and_convolutions_from_static_shapes():
    @tf.function
    def f(a, b, x, k):
        y = tf.nn.conv2d(x, k, 2, "SAME")  # [2, 4, 4, 5]
        dx = tf.nn.conv2d_transpose(y, k, tf.shape(x), 2, "SAME")
        dk = tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=tf.shape(k),
                                             out_backprop=y, strides=[1, 2, 2, 1],
                                             padding="SAME")
        return tf.matmul(a, b), tf.matmul(a, a, transpose_a=True), dx, dk

    graph = f.get_concrete_function(
        tf.TensorSpec([3, 7]), tf.TensorSpec([7, 11]), tf.TensorSpec([2, 8, 8, 6]),
        tf.TensorSpec([4, 4, 6, 5])).graph
    found = step_profile.graph_products(graph)
    by_type = {}
    for op in graph.get_operations():
        if op.name in found:
            by_type.setdefault(op.type, []).append(found[op.name])
    conv = 2 * 2 * 4 * 4 * (4 * 4 * 6 * 5)
    assert sorted(by_type["MatMul"]) == [(2 * 7 * 7 * 3, True), (2 * 3 * 11 * 7, False)]
    assert by_type["Conv2D"] == [(conv, False)]
    assert by_type["Conv2DBackpropInput"] == [(conv, False)]
    assert by_type["Conv2DBackpropFilter"] == [(conv, False)]


def test_flops_of_the_native_kernel_gradient():
    from dcgan_keras.models import native_ops
    if not native_ops.kernel_grad_takes(8, 8, 32, 64):
        pytest.skip("no native AMX kernel gradient here")

    @tf.function
    def f(x, dy):
        return native_ops.kernel_grad(x, dy)

    graph = f.get_concrete_function(tf.TensorSpec([2, 16, 16, 32], tf.bfloat16),
                                    tf.TensorSpec([2, 8, 8, 64], tf.bfloat16)).graph
    found = step_profile.graph_products(graph)
    assert list(found.values()) == [(2 * 2 * 8 * 8 * (4 * 4 * 32 * 64), False)]

    @tf.function
    def g(x, dy):  # with the LeakyReLU's gradient: D's first layer
        return native_ops.activation_kernel_grad(x, dy, dy, 0.2)

    graph = g.get_concrete_function(tf.TensorSpec([2, 16, 16, 3], tf.bfloat16),
                                    tf.TensorSpec([2, 8, 8, 64], tf.bfloat16)).graph
    found = step_profile.graph_products(graph)
    assert list(found.values()) == [(2 * 2 * 8 * 8 * (4 * 4 * 3 * 64), False)]
    assert step_profile.product_kind("gradient_tape/d_1/a_1/DcganActivationKernelGrad",
                                     "DcganActivationKernelGrad") == "kernel gradient"

    @tf.function
    def h(x, kernel):  # its forward product, as a 4x4 / stride-2 convolution's
        return native_ops.conv_few_channels(x, kernel, 0.2)

    graph = h.get_concrete_function(tf.TensorSpec([2, 16, 16, 3], tf.bfloat16),
                                    tf.TensorSpec([4, 4, 3, 64], tf.bfloat16)).graph
    assert list(step_profile.graph_products(graph).values()) == [
        (2 * 2 * 8 * 8 * (4 * 4 * 3 * 64), False)]


def _graph_of_product_and_gradients(forward, *specs):
    """The graph of forward(*inputs) and its gradients to them, for TensorSpecs `specs` of
    the inputs and, last, of the output's gradient."""
    @tf.function
    def f(*args):
        inputs, dy = list(args[:-1]), args[-1]
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            y = forward(*inputs)
        return [y] + tape.gradient(y, inputs, output_gradients=dy)

    return f.get_concrete_function(*specs).graph


def test_flops_of_the_padded_space_to_depth_convolution():
    """fast_layers.conv_down_padded: its forward product and input gradient count as the
    4x4 / stride-2 convolution's (its input gradient's outputs on the padding not counted),
    and its kernel gradient too."""
    from dcgan_keras.models import fast_layers, native_ops
    if not native_ops.kernel_grad_takes(8, 8, 32, 64):
        pytest.skip("no native AMX kernel gradient here")

    graph = _graph_of_product_and_gradients(
        fast_layers.conv_down_padded, tf.TensorSpec([2, 9, 9, 128], tf.bfloat16),
        tf.TensorSpec([4, 4, 32, 64], tf.bfloat16), tf.TensorSpec([2, 8, 8, 64], tf.bfloat16))
    found = step_profile.graph_products(graph)
    types = sorted({op.name: op.type for op in graph.get_operations()}[n] for n in found)
    assert types == ["Conv2D", "Conv2D", "DcganKernelGrad"]
    assert [flops for flops, _ in found.values()] == [2 * 2 * 8 * 8 * (4 * 4 * 32 * 64)] * 3


def test_flops_and_kinds_of_the_native_logit():
    from dcgan_keras.models import native_ops
    if native_ops.library() is None:
        pytest.skip("no native ops here")

    graph = _graph_of_product_and_gradients(native_ops.logit, tf.TensorSpec([3, 40], tf.bfloat16),
                                            tf.TensorSpec([40, 1]), tf.TensorSpec([3, 1]))
    found = step_profile.graph_products(graph)
    types = {op.name: op.type for op in graph.get_operations()}
    assert sorted(types[name] for name in found) == [
        "DcganLogit", "DcganLogitInputGrad", "DcganLogitKernelGrad"]
    assert {flops for flops, _ in found.values()} == {2 * 3 * 40}
    kind = step_profile.product_kind
    assert kind("gradient_tape/d_1/logit_1/DcganLogitKernelGrad", "DcganLogitKernelGrad") == (
        "kernel gradient")
    assert kind("gradient_tape/d_1/logit_1/DcganLogitInputGrad", "DcganLogitInputGrad") == (
        "input gradient")
    assert step_profile.op_class("d_1/logit_1/DcganLogit", "DcganLogit") == "products"


def test_flops_and_kinds_of_the_amx_matmul():
    from dcgan_keras.models import native_ops
    a, b = tf.TensorSpec([64, 96], tf.bfloat16), tf.TensorSpec([32, 96], tf.bfloat16)
    if not native_ops.matmul_runs(tf.zeros(a.shape, a.dtype), tf.zeros(b.shape, b.dtype),
                                  transpose_b=True):
        pytest.skip("no AMX matmul here")

    @tf.function
    def f(a, b):
        return (native_ops.matmul(a, b, transpose_b=True),
                native_ops.matmul(a, a, transpose_a=True))

    graph = f.get_concrete_function(a, b).graph
    found = step_profile.graph_products(graph)
    types = {op.name: op.type for op in graph.get_operations()}
    assert [types[name] for name in found] == ["DcganMatMul"] * 2
    assert sorted(found.values()) == [(2 * 64 * 32 * 96, False), (2 * 96 * 96 * 64, True)]
    assert step_profile.op_class("d_1/block4_conv_1/DcganMatMul", "DcganMatMul") == "products"
    assert step_profile.product_kind("d_1/c_1/DcganMatMul", "DcganMatMul") == "forward"


def test_flops_of_the_amx_convolution_ops():
    from dcgan_keras.models import native_ops
    x, k = tf.TensorSpec([4, 8, 8, 32], tf.bfloat16), tf.TensorSpec([512, 64], tf.bfloat16)
    dy, k4 = tf.TensorSpec([2, 16, 16, 64], tf.bfloat16), tf.TensorSpec([4, 4, 32, 64],
                                                                          tf.bfloat16)
    if not (native_ops.conv_matmul_runs(tf.zeros(x.shape, x.dtype), tf.zeros(k.shape, k.dtype))
            and native_ops.conv_transpose_runs(tf.zeros(dy.shape, dy.dtype),
                                               tf.zeros(k4.shape, k4.dtype))):
        pytest.skip("no AMX convolution ops here")

    @tf.function
    def f(x, k, dy, k4):
        return native_ops.conv_matmul(x, k), native_ops.conv_transpose(dy, k4)

    graph = f.get_concrete_function(x, k, dy, k4).graph
    found = step_profile.graph_products(graph)
    types = {op.name: op.type for op in graph.get_operations()}
    assert sorted(types[name] for name in found) == ["DcganConvMatMul", "DcganConvTranspose"]
    # 4 x 4 x 4 output pixels x 512 x 64; 2 x 16 x 16 dy pixels x 16 taps x 32 x 64
    assert sorted(flops for flops, _ in found.values()) == sorted(
        [2 * 64 * 512 * 64, 2 * 512 * 16 * 32 * 64])
    assert step_profile.op_class("d_1/c_1/DcganConvMatMul", "DcganConvMatMul") == "products"
    assert step_profile.product_kind("gradient_tape/d_1/c_1/DcganConvTranspose",
                                     "DcganConvTranspose") == "input gradient"


def test_bytes_of_the_ops_that_move_data_from_static_shapes():
    @tf.function
    def f(x, v):
        y = tf.nn.leaky_relu(tf.cast(x, tf.bfloat16), 0.2)   # cast: 4 + 2 bytes per value
        z = tf.reshape(y, [-1])                               # a view: moves nothing
        g = tf.gather(z, tf.range(6))
        v.assign_add(tf.ones([3]))
        return tf.matmul(tf.reshape(g, [2, 3]), tf.ones([3, 4], tf.bfloat16)), z

    v = tf.Variable(tf.zeros([3]))
    graph = f.get_concrete_function(tf.TensorSpec([5, 8]), v).graph
    moved = step_profile.graph_bytes(graph)
    by_type = {}
    for op in graph.get_operations():
        if op.name in moved:
            by_type.setdefault(op.type, []).append(moved[op.name])
    assert by_type["Cast"] == [40 * 4 + 40 * 2]
    assert by_type["LeakyRelu"] == [2 * 40 * 2]
    assert by_type["Reshape"] and set(by_type["Reshape"]) == {0}
    assert 6 * 2 + 6 * 2 <= by_type["GatherV2"][0] <= 6 * 2 + 6 * 2 + 40 * 2 + 64
    assert "MatMul" not in by_type  # products have FLOPs, not bytes


def test_an_optimizer_update_moves_seven_times_its_gradient():
    var = tf.Variable(tf.zeros([10, 4]))
    m, v = tf.Variable(tf.zeros([10, 4])), tf.Variable(tf.zeros([10, 4]))

    @tf.function
    def f(grad):
        tf.raw_ops.ResourceApplyAdam(var=var.handle, m=m.handle, v=v.handle, beta1_power=0.9,
                                     beta2_power=0.99, lr=0.1, beta1=0.9, beta2=0.99,
                                     epsilon=1e-7, grad=grad)
        return tf.constant(0)

    graph = f.get_concrete_function(tf.TensorSpec([10, 4])).graph
    op = next(o for o in graph.get_operations() if o.type == "ResourceApplyAdam")
    assert step_profile.op_bytes(op) == 7 * 40 * 4


def test_the_memory_bandwidth_of_an_elementwise_op_is_measured():
    bandwidth = step_profile.copy_bandwidth("bfloat16", megabytes=4, seconds=0.2)
    assert 1e8 < bandwidth < 1e13  # bytes/s: between 0.1 GB/s and 10 TB/s


def test_the_memory_bandwidth_times_one_op_a_call_and_counts_its_bytes_once(monkeypatch):
    """A loop of ops in one compiled function moved four times the bytes a step's op can."""
    import tensorflow as tf
    graph = step_profile.elementwise_op("float32").get_concrete_function(
        tf.TensorSpec([8, 1024], tf.float32)).graph
    assert [o.type for o in graph.get_operations()
            if o.type not in ("Placeholder", "Const", "Identity", "NoOp")] == ["Mul"]
    calls, timed = [], {}
    real_op = step_profile.elementwise_op

    def counted(dtype):
        op = real_op(dtype)
        return lambda x: calls.append(x.shape) or op(x)

    def best_rate(run, work, seconds):
        timed.update(work=work, out=float(run(3)))
        return 1.0

    monkeypatch.setattr(step_profile, "elementwise_op", counted)
    monkeypatch.setattr(step_profile, "best_rate", best_rate)
    step_profile.copy_bandwidth("float32", megabytes=1, seconds=0.1)
    assert calls == [tf.TensorShape([256, 1024])] * 3  # one op over the whole tensor a call
    assert timed["work"] == 2 * 2 ** 20  # read and written once: 2 x 1 MB per call


def test_the_memory_rate_is_the_faster_dtypes(monkeypatch):
    """A compute-bound bfloat16 kernel does not set the memory's rate."""
    measured = {"bfloat16": 6e9, "float32": 7.6e10}
    monkeypatch.setattr(step_profile, "copy_bandwidth", lambda dtype, seconds: measured[dtype])
    assert step_profile.memory_rate(0.1) == (7.6e10, measured)
    measured["bfloat16"] = 9e10
    assert step_profile.memory_rate(0.1)[0] == 9e10


def test_a_fused_convolution_is_found_under_its_activations_name():
    """Grappler fuses Conv2D + BiasAdd + activation into one op named after the
    activation; the product is found under that name, through a custom gradient's
    IdentityN (D's first layer and its LeakyReLU)."""
    @tf.custom_gradient
    def conv(x, k):
        row = k[0, 0, 0, :]
        y = tf.nn.bias_add(tf.nn.conv2d(x, k, 2, "SAME"), row - row)
        return y, lambda dy: (tf.zeros_like(x), tf.zeros_like(k))

    @tf.custom_gradient
    def pass_along(y, other):  # y second among an IdentityN's inputs
        return tf.identity(y), lambda dy: (dy, tf.zeros_like(other))

    @tf.function
    def f(x, k, w):
        fused = tf.nn.leaky_relu(pass_along(conv(x, k), w), 0.2)
        plain = tf.matmul(w, w)  # no BiasAdd after it: no alias
        return fused, plain

    graph = f.get_concrete_function(tf.TensorSpec([2, 8, 8, 3]), tf.TensorSpec([4, 4, 3, 5]),
                                    tf.TensorSpec([3, 3])).graph
    aliases = step_profile.graph_aliases(graph)
    ops = {op.type: op.name for op in graph.get_operations()}
    assert aliases == {ops["BiasAdd"]: ops["Conv2D"], ops["LeakyRelu"]: ops["Conv2D"]}


def test_interval_union_counts_overlaps_once():
    assert step_profile.interval_union([(0, 10), (5, 15), (20, 25)]) == 20
    assert step_profile.interval_union([(0, 10), (2, 3)]) == 10
    assert step_profile.interval_union([]) == 0


def test_summary_of_a_synthetic_trace():
    products = {"discriminator_1/c_1/Conv2D": (4e9, False),
                "gradient_tape/discriminator_1/c_1/MatMul_1": (2e9, True)}
    ms = 1e9  # picoseconds per millisecond
    events = [  # 2 steps
        ("discriminator_1/c_1/Conv2D", "Conv2D", 0, 40 * ms),
        ("gradient_tape/discriminator_1/c_1/MatMul_1", "MatMul", 40 * ms, 20 * ms),
        ("discriminator_1/bn_1/FusedBatchNormV3", "FusedBatchNormV3", 30 * ms, 10 * ms),
        ("discriminator_1/c_1/Conv2D", "Conv2D", 100 * ms, 40 * ms),
        ("gradient_tape/discriminator_1/c_1/MatMul_1", "MatMul", 140 * ms, 20 * ms),
        ("Unknown/MatMul", "MatMul", 160 * ms, 2 * ms),
    ]
    summary = step_profile.summarize_trace(events, 2, [0.1, 0.1], products, 100e9)
    assert summary["classes"]["products"] == pytest.approx(61.0)
    assert summary["classes"]["BatchNorm"] == pytest.approx(5.0)
    assert summary["op_ms"] == pytest.approx(66.0)
    assert summary["busy_ms"] == pytest.approx(61.0)  # the BatchNorm overlapped a conv
    assert summary["step_ms"] == pytest.approx(100.0)
    assert summary["gaps_ms"] == pytest.approx(39.0)
    rows = {(r["layer"], r["kind"]): r for r in summary["products"]}
    forward = rows[("discriminator/c", "forward")]
    assert forward["ms"] == pytest.approx(40.0) and forward["flops"] == pytest.approx(4e9)
    assert forward["bound_ms"] == pytest.approx(40.0) and forward["of_peak"] == 1.0
    assert rows[("discriminator/c", "kernel gradient")]["of_peak"] == pytest.approx(1.0)
    assert summary["unmatched"] == {"Unknown/MatMul": pytest.approx(1.0)}
    assert summary["of_peak"] == pytest.approx(0.6)
    text = step_profile.markdown(summary, "header")
    assert "| products | 61.0 |" in text and "Unknown/MatMul" in text

    # With the bytes of the other ops and a bandwidth: their floor, and the step's.
    moved = {"discriminator_1/bn_1/FusedBatchNormV3": 0.5e9}  # 0.5 GB a run
    summary = step_profile.summarize_trace(events, 2, [0.1, 0.1], products, 100e9,
                                           moved, 100e9)
    batchnorm = summary["memory"]["BatchNorm"]
    assert batchnorm["ms"] == pytest.approx(5.0) and batchnorm["sized_ms"] == pytest.approx(5.0)
    assert batchnorm["floor_ms"] == pytest.approx(2.5)  # 0.5 GB over 2 steps at 100 GB/s
    assert summary["floor_step_ms"] == pytest.approx(61.0 + 2.5)
    assert summary["floor_of_peak"] == pytest.approx(60.0 / 63.5)
    # The products at the peak (60 ms of FLOPs, not the 61 they ran) with that floor.
    assert summary["ceiling_step_ms"] == pytest.approx(60.0 + 2.5)
    assert summary["ceiling_of_peak"] == pytest.approx(60.0 / 62.5)
    text = step_profile.markdown(summary, "header")
    assert "| BatchNorm | 5.0 | 7.6% | 5.0 | 2.5 |" in text and "63.5 ms: 0.94" in text
    assert "62.5 ms: 0.96 of the peak, the most" in text
    assert "(they ran at 0.98 of its rate)" in text  # 60 ms of FLOPs at the peak in 61
    # An op faster than the bandwidth (its bytes in cache) counts as it ran.
    summary = step_profile.summarize_trace(events, 2, [0.1, 0.1], products, 100e9,
                                           {"discriminator_1/bn_1/FusedBatchNormV3": 5e9}, 100e9)
    assert summary["memory"]["BatchNorm"]["floor_ms"] == pytest.approx(5.0)  # not 25

    # A fused product runs under its activation's name: counted as its convolution.
    fused = events + [("discriminator_1/act_1/LeakyRelu", "FusedConv2D", 200 * ms, 10 * ms)]
    summary = step_profile.summarize_trace(
        fused, 2, [0.1, 0.1], products, 100e9,
        aliases={"discriminator_1/act_1/LeakyRelu": "discriminator_1/c_1/Conv2D"})
    rows = {(r["layer"], r["kind"]): r for r in summary["products"]}
    assert rows[("discriminator/c", "forward")]["ms"] == pytest.approx(45.0)
    assert "discriminator_1/act_1/LeakyRelu" not in summary["unmatched"]


def _conv_layers(model):
    """(layer, FLOPs of one product per image) of a net's 4x4 convolutions and denses."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            out.append((layer.name, 2 * layer.kernel.shape[0] * layer.kernel.shape[1]))
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
            low = (layer.output.shape if isinstance(layer, keras.layers.Conv2D)
                   else layer.input.shape)
            k = layer.kernel.shape
            out.append((layer.name, 2 * low[1] * low[2] * k[0] * k[1] * k[2] * k[3]))
    return out


@pytest.mark.parametrize("precision", ["none", "bfloat16"])  # Keras' convs; the matmul paths
def test_a_train_step_counts_every_product_the_game_needs(precision):
    """The step's FLOPs from the traced graph equal the game's count: D forward on real,
    fake and (for G) fake again, its kernel gradients twice, its input gradients three
    times except the first layer's (needed only to reach G); G forward, kernel and input
    gradients once, no input gradient of z."""
    gan = step_profile.build(32, 8, precision)
    found = step_profile.train_step_products(gan, 8, 32)
    total = sum(flops for flops, _ in found.values())
    d, g = _conv_layers(gan.discriminator), _conv_layers(gan.generator)
    expected = (sum(3 * f + 2 * f + 3 * f for _, f in d) - 2 * d[0][1]
                + sum(3 * f for _, f in g) - g[0][1])
    assert total == 8 * expected


def test_a_real_profile_is_read_back_whole(tmp_path):
    """Profiling real steps (bfloat16, the matmul paths) through --profile_steps' callback:
    every product op the trace shows is found in the traced graph, and together they are
    exactly the game's products (slow lane: tracing and two profiled steps)."""
    args = step_profile.argparse.Namespace(
        image_size=32, batch=8, precision="bfloat16", warmup_steps=1, profile_steps=2,
        peak_seconds=0.2, out=str(tmp_path))
    summary = step_profile.profile(args)
    assert summary["unmatched"] == {}
    gan = step_profile.build(32, 8, "bfloat16")
    graph_flops = sum(f for f, _ in step_profile.train_step_products(gan, 8, 32).values())
    assert summary["flops"] == pytest.approx(graph_flops)  # every product ran once a step
    layers = {r["layer"] for r in summary["products"]}
    assert {"discriminator/block3_conv", "generator/block1_deconv"} <= layers
    assert all(ms >= 0 for ms in summary["classes"].values())
    for name in ("products", "BatchNorm", "activations", "gathers and layout copies",
                 "casts", "Adam"):
        assert summary["classes"][name] > 0, name
    assert 0 < summary["busy_ms"] <= summary["step_ms"] * 1.05
    assert summary["peak_flops"] > 0 and summary["of_peak"] > 0
    # The other ops are matched to the graph's tensors: each memory-bound class is sized.
    for name in ("BatchNorm", "activations", "casts"):
        memory = summary["memory"][name]
        assert memory["sized_ms"] == pytest.approx(memory["ms"]), name
        assert memory["floor_ms"] > 0, name
    assert summary["bandwidth"] > 0 and summary["floor_of_peak"] > 0
