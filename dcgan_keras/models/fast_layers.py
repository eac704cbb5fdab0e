"""Keras layers with the same variables and maths as Keras', faster in DCGAN training.

- `BatchNormalization`: one fused op (FusedBatchNormV3: oneDNN on CPU, cuDNN on GPU) in
  training instead of Keras 3's ~10 elementwise ops and reductions (and their gradients)
  in float32 with casts around them under mixed precision; moving statistics averaged
  over replicas (Keras 3 lets each replica's copy drift). In bfloat16 on CPUs with
  AVX512-BF16 it is `native_ops.batch_norm`, and the `ReLU` / `LeakyReLU` that receives
  its output applies the normalisation and itself in one pass (`native_ops`).
- `Conv2D` / `Conv2DTranspose`: DCGAN's convolutions are all 4x4, stride 2, "same". On
  CPUs, oneDNN's bfloat16 weight gradient (Conv2DBackpropFilter) is slow where the spatial
  size is small and the channels many: on a 2-core AMX Xeon (TF 2.21, batch 128, 8x8x256
  -> 4x4x512) it ran at ~40 GFLOP/s, against ~200 GFLOP/s for the same product written as
  space-to-depth + one matmul; the forward product and the input gradient there ran at
  ~180 and ~250 GFLOP/s as oneDNN convolutions, ~240 and ~350 as matmuls. For bfloat16
  layers on CPU whose low-resolution side is at most `MAX_MATMUL_SIDE` (4 on CPUs with
  AMX; 0 without, where oneDNN's were faster: `max_matmul_side`), these layers
  compute all three products as matmuls (at 8x8 and above oneDNN's forward convolutions
  and input gradients were as fast or faster, and are kept). On AMX the forward one
  (`conv`: D's last convolution, G's first input gradient) is `native_ops.conv_matmul`,
  the AMX matmul with its patches built in L2 (the AMX matmul on TensorFlow's patches
  took ~5.7 ms a call at [2048, 4096] x [4096, 512] against TensorFlow's 7.7-8.0, inputs
  rotated, and the step A/B gained a median 4% over 7 rounds), and the transposed one
  (`conv_transpose`) is `native_ops.conv_transpose` (4.6-5.3 ms a call at 4x4x512 ->
  8x8x256 against 5.7-6.3 for TensorFlow's MatMul + col2im), which also takes the input
  gradient of D's second layer (`transposed_conv`: 16x16x128 -> 32x32x64, 4.6-5.0 ms
  against oneDNN's 6.3-6.8). Up to
  `MAX_MATMUL_KERNEL_GRAD_SIDE` (8) the kernel gradient alone is a matmul: at 16x16 ->
  8x8 (128 -> 256 channels) oneDNN's ran at ~180 GFLOP/s per core, the matmul at ~250.
  On CPUs with AMX, where the channels are multiples of 32 and an image's output pixels
  fill whole AMX tiles (or, at 4x4, a tile's pixels span two images), the kernel gradient
  is `native_ops.kernel_grad` up to the sizes measured (`native_ops.kernel_grad_takes`;
  at 8x8x256 -> 4x4x512 6.6-6.9 ms a call against 8.4-8.8 for im2col + MatMul), also
  where the rules above keep oneDNN's
  (32x32x64 -> 16x16x128: 8.0 ms against oneDNN's 11.8; 16x16x128 -> 8x8x256: 7.2 against
  the matmul's 9.0, inputs cold in cache, batch 128).
  Where the image side has at most `MAX_FEW_CHANNELS` channels (D's first layer, G's
  output layer), the transposed product (D's input gradient, G's forward) is the matmul
  + col2im of `conv_transpose`: oneDNN's bfloat16 conv2d_transpose to 3 channels ran at
  ~32 GFLOP/s on one Zen 4 core, the matmul path at ~45-60 (64x64, batch 128). On CPUs
  with AMX the other one (D's forward, with its LeakyReLU; G's input gradient) is
  `native_ops.conv_few_channels`, where oneDNN's ran at ~0.2 of the matmul peak.
- The padded space-to-depth form (`native_ops.padded_space_to_depth`, "P" in
  ops.cc): a 4x4 / stride-2 / "same" convolution of x is a 2x2 / stride-1 / "valid" one of
  P(x), and oneDNN's stride-1 products ran faster than its stride-2 ones on the AMX Xeon
  (`padded_s2d_sides`). Where the input side is 16 or 32 there, a `Conv2D` after a native
  batch norm + LeakyReLU has them write its input in that form (`conv_down_padded`; D's
  third layer), and a batch norm after a `Conv2DTranspose` reads that layer's output in
  it (`conv_up_padded`; G's second and third). The native batch norm ops and the AMX
  kernel gradient read and write the form directly, so nothing converts it, and its 2x2
  kernels are laid out by one native op (`native_ops.padded_kernels`).
- Each custom gradient runs in its forward op's name scope under gradient_tape/, so a
  profile (`--profile_steps`, benchmarks/step_profile.py) names its layer; an op made again
  in another form (`_made_again`) keeps its first layer's scope.
- Casts: where the native ops run, `Conv2D`, `Conv2DTranspose` and `Dense` cast their
  float32 kernels, and these layers and `Activation` cast an input that arrives in
  another dtype, with `native_ops.cast` (bit for bit TensorFlow's Cast, which Keras runs).
- `LeakyReLU`: its gradient reads the activation's output instead of its input (same
  signs), so the pre-activation tensor is not kept for the backward pass and Grappler
  fuses the activation into the Conv2D + BiasAdd before it (oneDNN), which the stock
  gradient (LeakyReluGrad of the input) prevents. D's bias-free first layer adds a zero
  bias for this (`_zero_bias_added`); after a BatchNorm no fusion exists. On CPUs with
  AMX, a `LeakyReLU` right after a few-channel `Conv2D` (D's first layer) runs both as
  `conv_down_leaky_relu`: the convolution and activation in one native op, and a kernel
  gradient that reads the activation's gradient as it goes (`native_ops`).
- `Dense`: a float32 layer with one output on bfloat16 features (D's logit) is
  `native_ops.logit`, without a float32 copy of the features.

Measured on that machine at 64x64, batch 128, mixed_bfloat16 (ngf=ndf=64), A/B in
alternating processes: the fused BatchNorm made the training step 1.33x faster, the matmul
weight gradient another 1.32x, the matmul forward and input gradient another 1.18x; the
8x8 matmul kernel gradient and the LeakyReLU gradient from the output another ~1.08x
(A/B in one process, CPU time per image, on a loaded machine).
Same variables and names, same results up to rounding: checkpoints and exports do not
change (tests/models/test_fast_layers.py checks outputs and gradients against Keras').
"""
import functools
import threading

import keras
import numpy as np
import tensorflow as tf

from dcgan_keras.models import keras_compat, native_ops
from dcgan_keras.utils.cpu import cpu_flags

# This thread's last BatchNormalization output made by the native op, with what
# `native_ops.batch_norm_apply` needs (per thread: MirroredStrategy builds each replica's
# step in its own thread).
_NORMALIZED = threading.local()
_CONVOLVED = threading.local()
_APPLIED = threading.local()
_DECONVOLVED = threading.local()


def max_matmul_side(flags):
    """The low-resolution side up to which all three products are matmuls, for a CPU with
    these /proc/cpuinfo flags. With AMX (a 2-core Xeon, batch 128 at 4x4): oneDNN's
    forward convolution and input gradient ran at ~180 and ~250 GFLOP/s, matmuls at ~240
    and ~350, so 4. Without AMX (a 2-core Zen 4 with AVX512-BF16, 8x8x256 -> 4x4x512):
    oneDNN's ran at ~450 and ~370 GFLOP/s, the matmul paths at ~340 and ~300 with their
    im2col and col2im, so 0: only the kernel gradient is a matmul there (~340 against
    oneDNN's ~80)."""
    return 4 if "amx_bf16" in flags else 0


MAX_MATMUL_SIDE = max_matmul_side(cpu_flags())
# Low-resolution side up to which only the kernel gradient is a matmul (the forward
# product and the input gradient stay oneDNN convolutions).
MAX_MATMUL_KERNEL_GRAD_SIDE = 8


def padded_s2d_sides(flags):
    """The input sides at which a `Conv2D` after a native batch norm and activation takes
    their output in the padded space-to-depth form (`conv_down_padded`), for a CPU with these
    flags. On the AMX Xeon (batch 128, per call, inputs rotated, one kernel reused; in the
    step's profile these products ran at 1.44-1.71 of the matmul peak, 0.92-1.15 before,
    and the step A/B gained ~4%): at 16x16x128 -> 256 oneDNN's
    stride-1 forward product took 4.95 ms against 6.26 for its stride-2 one and the input
    gradient 5.5-5.9 against 7.4-8.1; at 32x32x64 -> 128 the forward products were even
    (4.75, 4.81), the input gradients 5.6-5.9 against 7.4-7.5. At 8x8 the stride-1 ones ran
    at half the speed (and the matmuls there are faster still). Not measured without AMX."""
    return (16, 32) if "amx_bf16" in flags else ()


PADDED_S2D_SIDES = padded_s2d_sides(cpu_flags())
# Channels on the image side (D's input, G's output) up to which the transposed product
# (D's first input gradient, G's output layer) is a matmul + col2im: oneDNN's bfloat16
# conv2d_transpose to 3 channels ran at ~32 GFLOP/s on one Zen 4 core, the matmul path at
# ~45-60 (benchmarks/step_profile.py shows both layers).
MAX_FEW_CHANNELS = 4


def _in_forward_scope(grad):
    """`grad` run in the name scope its forward op was built in, under "gradient_tape/" as
    TensorFlow's own gradients are: a custom gradient otherwise lands at the top of the
    graph, and a profile (`--profile_steps`) could not say which layer its products are."""
    scope = tf.get_current_name_scope()
    if not scope:
        return grad

    def scoped(*dy):
        with tf.name_scope(f"gradient_tape/{scope}/"):
            return grad(*dy)

    return scoped


def _patches(x):
    """im2col of a 4x4 / stride-2 / "same" convolution, as one gather.

    Args:
        x: [N, H, W, C] with even, static H and W.
    Returns:
        [N * H/2 * W/2, 16 * C] patches whose columns are ordered (kh, kw, c), as the rows
        of kernel.reshape([16 * C, C']). One gather of C-long rows of the zero-padded
        input (~2x faster on CPU than space-to-depth + 4 slices + concat).
    """
    _, h, w, c = x.shape
    if native_ops.usable(x):  # one copy, no padded intermediate
        return tf.reshape(native_ops.im2col(x), [-1, 16 * c])
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])  # "same" pads 1 on each side
    i, j, kh, kw = np.meshgrid(np.arange(h // 2), np.arange(w // 2), np.arange(4),
                               np.arange(4), indexing="ij")
    rows = ((2 * i + kh) * (w + 2) + 2 * j + kw).reshape(-1).astype(np.int32)
    flat = tf.reshape(padded, [-1, (h + 2) * (w + 2), c])
    return tf.reshape(tf.gather(flat, rows, axis=1), [-1, 16 * c])


def _flat_kernel(kernel):
    """[4, 4, C, C'] -> [16C, C'] with rows ordered (a, b, dh, dw, c): kernel row
    kh = 2a + dh and column kw = 2b + dw (the space-to-depth blocks of `conv_transpose`)."""
    c, c_out = kernel.shape[2], kernel.shape[3]
    kernel = tf.reshape(kernel, [2, 2, 2, 2, c, c_out])  # (a, dh, b, dw, c, c')
    return tf.reshape(tf.transpose(kernel, [0, 2, 1, 3, 4, 5]), [16 * c, c_out])


def conv(x, kernel):
    """conv2d(x [N, H, W, C], kernel [4, 4, C, C'], stride 2, "same") as one matmul."""
    _, h, w, c = x.shape
    flat = tf.reshape(kernel, [16 * c, kernel.shape[3]])
    if native_ops.conv_matmul_runs(x, flat):  # no patch matrix in memory
        return native_ops.conv_matmul(x, flat)
    patches = _patches(x)
    if native_ops.matmul_runs(patches, flat):
        y = native_ops.matmul(patches, flat)
    else:
        y = tf.matmul(patches, flat)
    return tf.reshape(y, [-1, h // 2, w // 2, kernel.shape[3]])


def conv_transpose(y, kernel):
    """conv2d_transpose(y [N, h, w, C'], kernel [4, 4, C, C'], stride 2, "same") ->
    [N, 2h, 2w, C] (the input gradient of `conv`): `native_ops.conv_transpose` where it
    takes the shapes (at 4x4x512 -> 8x8x256, batch 128, on the AMX Xeon: 4.6-5.3 ms a call
    against 5.7-6.3 for the matmul and col2im), else one matmul plus col2im: each of the
    four 2x2 blocks of the space-to-depth kernel lands at its own offset."""
    if native_ops.conv_transpose_runs(y, kernel):  # AMX, no column matrix in memory
        return native_ops.conv_transpose(y, kernel)
    _, h, w, c_out = y.shape
    c = kernel.shape[2]
    y = tf.reshape(y, [-1, c_out])
    if native_ops.usable(y):  # one pass instead of 4 slices, 4 pads, a sum, a transpose
        cols = tf.matmul(y, tf.reshape(kernel, [16 * c, c_out]), transpose_b=True)
        return native_ops.col2im(tf.reshape(cols, [-1, h, w, 16 * c]))  # (kh, kw, c)
    cols = tf.matmul(y, _flat_kernel(kernel), transpose_b=True)
    cols = tf.reshape(cols, [-1, h, w, 4, 4 * c])  # (a, b) blocks of (dh, dw, c)
    blocks = None
    for i, (a, b) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        part = tf.pad(cols[:, :, :, i, :], [[0, 0], [a, 1 - a], [b, 1 - b], [0, 0]])
        blocks = part if blocks is None else blocks + part
    return _depth_to_space(blocks)[:, 1:-1, 1:-1, :]  # drop the "same" padding


def _depth_to_space(x):
    """tf.nn.depth_to_space(x, 2) as a reshape + transpose: the transpose runs on every
    intra-op thread, DepthToSpace on one (3-channel output, 128 x 33 x 33 x 12 -> 66 x 66
    x 3 in bfloat16 on 2 Zen 4 cores: 0.5 ms against 2.0)."""
    _, h, w, c = x.shape
    x = tf.reshape(x, [-1, h, w, 2, 2, c // 4])  # (dh, dw, c) blocks
    return tf.reshape(tf.transpose(x, [0, 1, 3, 2, 4, 5]), [-1, 2 * h, 2 * w, c // 4])


def kernel_gradient(x, dy):
    """d loss / d kernel [4, 4, C, C'] of y = conv2d(x, kernel, stride 2, "same"): on AMX
    `native_ops.kernel_grad` where it takes the shapes, else a matmul of the patches up to
    `MAX_MATMUL_KERNEL_GRAD_SIDE`, else oneDNN's.

    Args:
        x: the convolution's input [N, H, W, C].
        dy: the gradient of its output [N, H/2, W/2, C'].
    """
    if native_ops.kernel_grad_runs(x, dy):
        return native_ops.kernel_grad(x, dy)
    c, c_out = x.shape[-1], dy.shape[-1]
    if dy.shape[1] > MAX_MATMUL_KERNEL_GRAD_SIDE:
        return _onednn_kernel_gradient(x, dy)
    grad = tf.matmul(_patches(x), tf.reshape(dy, [-1, c_out]), transpose_a=True)
    return tf.reshape(grad, [4, 4, c, c_out])


@tf.custom_gradient
def conv_down(x, kernel):
    """`conv` with its gradients as matmuls: dx = `conv_transpose`, dkernel."""
    def grad(dy):
        return conv_transpose(dy, kernel), kernel_gradient(x, dy)

    return conv(x, kernel), _in_forward_scope(grad)


@tf.custom_gradient
def conv_up(x, kernel):
    """`conv_transpose` of x [N, h, w, C'] with its gradients as matmuls (the transposed
    conv's kernel gradient is that of the forward conv from its output to its input)."""
    def grad(dy):
        return conv(dy, kernel), kernel_gradient(dy, x)

    return conv_transpose(x, kernel), _in_forward_scope(grad)


def transposed_conv(y, kernel):
    """tf.nn.conv2d_transpose(y [N, h, w, C'], kernel [4, 4, C, C'], 2, "SAME") ->
    [N, 2h, 2w, C]: on AMX `native_ops.conv_transpose` where it takes the shapes (at
    16x16x128 -> 32x32x64, batch 128: 5.0-5.5 ms a call against oneDNN's 6.3-6.8), else
    oneDNN's."""
    if native_ops.conv_transpose_runs(y, kernel):
        return native_ops.conv_transpose(y, kernel)
    _, h, w, _ = y.shape
    out_shape = [tf.shape(y)[0], 2 * h, 2 * w, kernel.shape[2]]
    return tf.nn.conv2d_transpose(y, kernel, out_shape, 2, "SAME")


@tf.custom_gradient
def conv_down_kernel_grad(x, kernel):
    """tf.nn.conv2d(x, kernel, 2, "SAME") whose kernel gradient is `kernel_gradient` (and
    input gradient `transposed_conv`)."""
    def grad(dy):
        return transposed_conv(dy, kernel), kernel_gradient(x, dy)

    return tf.nn.conv2d(x, kernel, 2, "SAME"), _in_forward_scope(grad)


@tf.custom_gradient
def conv_up_kernel_grad(x, kernel):
    """`transposed_conv`(x, kernel) whose kernel gradient is `kernel_gradient`."""
    def grad(dy):
        return tf.nn.conv2d(dy, kernel, 2, "SAME"), kernel_gradient(dy, x)

    return transposed_conv(x, kernel), _in_forward_scope(grad)


def _onednn_kernel_gradient(x, dy):
    """d loss / d kernel of y = conv2d(x, kernel, 2, "SAME") as oneDNN's own product."""
    return tf.raw_ops.Conv2DBackpropFilter(input=x,
                                           filter_sizes=[4, 4, x.shape[-1], dy.shape[-1]],
                                           out_backprop=dy, strides=[1, 2, 2, 1],
                                           padding="SAME")


def padded_kernel(kernel):
    """[4, 4, C, C'] -> [2, 2, 4 C, C']: the kernel of the 2x2 / stride-1 convolution of
    `native_ops.padded_space_to_depth(x)` that is the 4x4 / stride-2 / "same" one of x."""
    c, c_out = kernel.shape[2], kernel.shape[3]
    return tf.reshape(_flat_kernel(kernel), [2, 2, 4 * c, c_out])


def _padded_kernels(kernel):
    """(`padded_kernel(kernel)`, its flip [2, 2, C', 4 C] for `_padded_transposed`): one
    native op where it runs (TensorFlow's Transpose, ReverseV2 and Transpose took ~0.25 ms
    each a call at 4x4x128x256 on the AMX Xeon)."""
    if native_ops.padded_kernels_runs(kernel):
        return native_ops.padded_kernels(kernel)
    k = padded_kernel(kernel)
    return k, tf.transpose(tf.reverse(k, [0, 1]), [0, 1, 3, 2])


def _padded_transposed(y, flipped):
    """The transposed convolution of y [N, h, w, C'] by the 2x2 kernel k [2, 2, 4 C, C'] (its
    flip [2, 2, C', 4 C] given, `_padded_kernels`), as oneDNN's 2x2 / stride-1 convolution
    of y padded by one pixel: [N, h + 1, w + 1, 4 C], the padded space-to-depth form of the
    4x4 / stride-2 transposed convolution, with values also on its padding."""
    return tf.nn.conv2d(y, flipped, 1, [[0, 0], [1, 1], [1, 1], [0, 0]])


@tf.custom_gradient
def conv_down_padded(xp, kernel):
    """tf.nn.conv2d(x, kernel, 2, "SAME") from xp = `native_ops.padded_space_to_depth(x)`,
    as oneDNN's 2x2 / stride-1 convolution of xp; its input gradient (the gradient of xp,
    its padding's too) oneDNN's 2x2 convolution of dy padded by one pixel, its kernel
    gradient `native_ops.kernel_grad` reading xp. oneDNN's stride-1 products ran faster than
    its stride-2 ones (`PADDED_S2D_SIDES`)."""
    k, flipped = _padded_kernels(kernel)

    def grad(dy):
        return (_padded_transposed(dy, flipped),
                native_ops.kernel_grad(xp, dy, padded_s2d=True))

    return tf.nn.conv2d(xp, k, 1, "VALID"), _in_forward_scope(grad)


@tf.custom_gradient
def conv_up_padded(x, kernel):
    """`native_ops.padded_space_to_depth` of tf.nn.conv2d_transpose(x, kernel, 2, "SAME")
    (the input gradient of `conv_down_padded`), as oneDNN's 2x2 / stride-1 convolution of x
    padded by one pixel; what it makes on the padding is not that form's zeros, so only ops
    that do not read the padding may take it (`native_ops.batch_norm(padded_x=True)`).
    Its gradient takes dy in that form with zeros on the padding (as the batch norm's
    gradient writes it): the input gradient oneDNN's 2x2 convolution of dy, the kernel
    gradient `native_ops.kernel_grad` reading it."""
    k, flipped = _padded_kernels(kernel)

    def grad(dy):
        return tf.nn.conv2d(dy, k, 1, "VALID"), native_ops.kernel_grad(dy, x, padded_s2d=True)

    return _padded_transposed(x, flipped), _in_forward_scope(grad)


def _zero_bias_added(y, kernel):
    """y + a zero bias that Grappler cannot fold away (k - k for a row of the kernel), so
    that its remapper fuses an activation that follows into oneDNN's convolution (Conv2D
    + BiasAdd + LeakyRelu -> _FusedConv2D), which it does not do for a Conv2D alone: D's
    first layer and its LeakyReLU (64x64x3 -> 32x32x64, batch 128, bfloat16, 2 Zen 4
    cores) took 4.47 ms apart and 3.33 fused, the convolution alone 3.14. The values
    do not change (the bias is exactly zero; its gradient is the custom one's, none)."""
    row = kernel[0, 0, 0, :]
    return tf.nn.bias_add(y, row - row)


@tf.custom_gradient
def conv_down_few_channels(x, kernel):
    """tf.nn.conv2d(x, kernel, 2, "SAME") for an x of few channels: the forward product
    stays oneDNN's, the input gradient is `conv_transpose`, the kernel gradient
    `kernel_gradient` (on AMX the native one, else oneDNN's). The
    forward product carries a zero bias (`_zero_bias_added`): D's LeakyReLU fuses into it."""
    def grad(dy):
        return conv_transpose(dy, kernel), kernel_gradient(x, dy)

    y = _zero_bias_added(tf.nn.conv2d(x, kernel, 2, "SAME"), kernel)
    return y, _in_forward_scope(grad)


def conv_down_leaky_relu(x, kernel, alpha):
    """leaky_relu(conv_down_few_channels(x, kernel), alpha) on AMX: the forward product
    and activation are `native_ops.conv_few_channels` (oneDNN's fused one took 2.7-3.0 ms
    a call in the step at 128x64x64x3 -> 64 on the AMX Xeon, this 1.9-2.1), the kernel
    gradient is `native_ops.activation_kernel_grad` (the activation's gradient read as the
    kernel gradient reads dy, never written: D's first layer in the D step, twice a step,
    where the input gradient is not needed); the input gradient takes the activation's
    gradient first. (Its output written in the padded space-to-depth form for the next
    layer, `conv_down_padded`, was measured on the AMX Xeon and not kept: the next layer's
    input gradient gained ~1 ms a call, the few-channel ops reading and writing that form
    lost as much; A/B +0.4%, within the noise.)"""
    @tf.custom_gradient
    def fn(x, kernel):
        y = native_ops.conv_few_channels(x, kernel, alpha)

        def grad(dy):
            dz = native_ops.activation_grad(dy, y, alpha)
            return (conv_transpose(dz, kernel),
                    native_ops.activation_kernel_grad(x, dy, y, alpha))

        return y, _in_forward_scope(grad)

    return fn(x, kernel)


@tf.custom_gradient
def conv_up_few_channels(x, kernel):
    """tf.nn.conv2d_transpose(x, kernel, 2, "SAME") to few channels as `conv_transpose`;
    its input gradient is `native_ops.conv_few_channels` on AMX, else oneDNN's, its kernel
    gradient `kernel_gradient`."""
    def grad(dy):
        if native_ops.conv_few_channels_runs(dy, kernel.shape[-1]):
            dx = native_ops.conv_few_channels(dy, kernel)
        else:
            dx = tf.nn.conv2d(dy, kernel, 2, "SAME")
        return dx, kernel_gradient(dy, x)

    return conv_transpose(x, kernel), _in_forward_scope(grad)


def _kernel_as(kernel, x):
    """A layer's kernel (a Keras variable) in x's dtype: its own value cast by
    `native_ops.cast`, which where the native ops run is one native op (TensorFlow's
    bfloat16 Cast, which Keras' autocast runs, moved ~5 GB/s on the AMX Xeon: 0.8-0.9 ms
    for a 4x4x256x512 kernel, four casts a step and their gradients), bit for bit the
    same, and elsewhere TensorFlow's Cast as Keras' autocast."""
    if isinstance(kernel, keras.Variable):
        return native_ops.cast(keras_compat.own_dtype_value(kernel), x.dtype)
    return tf.cast(kernel, x.dtype)


def _in_compute_dtype(layer, inputs):
    """A layer's input cast to its compute dtype as Keras' `__call__` casts it (float
    inputs, when the layer autocasts), with `native_ops.cast`: the layers whose inputs
    arrive in another dtype (D's float32 images, the bfloat16 features of the float32 logit
    and tanh) skip Keras' cast (`keras_compat.skip_input_casts`), TensorFlow's Cast, which
    took 0.3-0.7 ms a call on the AMX Xeon at 128x64x64x3 and 128x8192."""
    x = tf.convert_to_tensor(inputs)
    dtype = tf.as_dtype(layer.compute_dtype)
    if x.dtype == dtype or not x.dtype.is_floating or not layer.autocast:
        return x
    return native_ops.cast(x, dtype)


def _on_cpu():
    return not tf.config.list_logical_devices("GPU")  # measured on CPUs only


def _fast_path(layer, x, low_res, image_channels, low_res_channels):
    """conv_* (all products as matmuls), conv_*_kernel_grad (the kernel gradient only),
    conv_*_few_channels (the transposed product only), or None (Keras' layer) for this
    layer and input; `low_res`: (height, width) of its low-resolution side,
    `image_channels` / `low_res_channels`: the channels on its high- / low-resolution side."""
    if not (keras.backend.backend() == "tensorflow" and layer.compute_dtype == "bfloat16"
            and _on_cpu()
            and tuple(layer.kernel_size) == (4, 4) and tuple(layer.strides) == (2, 2)
            and layer.padding == "same" and layer.data_format == "channels_last"
            and tuple(layer.dilation_rate) == (1, 1) and x.shape.rank == 4
            and None not in x.shape[1:]):
        return None
    if low_res[0] <= MAX_MATMUL_SIDE:
        return "matmul"
    if low_res[0] <= MAX_MATMUL_KERNEL_GRAD_SIDE:
        return "kernel_grad"
    if image_channels <= MAX_FEW_CHANNELS:  # its kernel gradient: `kernel_gradient` too
        return "few_channels"
    if native_ops.kernel_grad_takes(*low_res, image_channels, low_res_channels):
        return "kernel_grad"
    return None


@keras.saving.register_keras_serializable(package="dcgan_keras")
class BatchNormalization(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization, fused in training; replicas keep equal statistics.

    Keras 3 creates the moving mean/variance with aggregation "none", so under a
    tf.distribute strategy each replica updates its own copy from its own batch and the
    copies drift apart (only replica 0's reach the checkpoint). Aggregation "mean"
    averages the replicas' updates, as tf.keras 2 did. No effect on one device.
    """

    def add_weight(self, *args, **kwargs):
        if not kwargs.get("trainable", True):
            kwargs["aggregation"] = "mean"
        return super().add_weight(*args, **kwargs)

    def call(self, inputs, training=None, mask=None):
        x = inputs
        _NORMALIZED.last = None
        if not (training and self.trainable and mask is None and not self.synchronized
                and not self.renorm and self.scale and self.center
                and keras.backend.backend() == "tensorflow" and len(x.shape) == 4
                and self.axis in (-1, 3) and x.dtype in (tf.float32, tf.bfloat16, tf.float16)):
            return super().call(inputs, training=training, mask=mask)
        gamma, beta = tf.cast(self.gamma, tf.float32), tf.cast(self.beta, tf.float32)
        native = native_ops.usable(x)
        padded = _deconvolved_padded(x) if native else None
        if padded is not None:
            # x made again by its Conv2DTranspose in the padded space-to-depth form
            # (`conv_up_padded`), which the native ops read; the first x goes unused
            x_in, kernel, scope = padded
            x = _made_again(scope, conv_up_padded, x_in, kernel)
        if native:
            # The fused op (bfloat16, CPU); an activation layer after it may apply the
            # statistics itself, and then y is never computed.
            y, mean, variance = native_ops.batch_norm(x, gamma, beta, self.epsilon,
                                                      padded_x=padded is not None)
        else:
            # x keeps its dtype (bfloat16 under mixed precision); statistics are float32.
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True)
            # The op returns the unbiased (n - 1) batch variance; Keras averages the
            # biased one.
            n = tf.cast(tf.size(x) // tf.shape(x)[-1], tf.float32)
            variance = variance * ((n - 1.0) / n)
        self.moving_mean.assign(self.moving_mean * self.momentum
                                + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum
                                    + variance * (1.0 - self.momentum))
        y = tf.cast(y, self.compute_dtype)
        if native:
            _NORMALIZED.last = (y, dict(x=x, mean=mean, variance=variance, gamma=gamma,
                                        beta=beta, epsilon=self.epsilon,
                                        padded_x=padded is not None))
        return y


@keras.saving.register_keras_serializable(package="dcgan_keras")
class Conv2D(keras.layers.Conv2D):
    """keras.layers.Conv2D; 4x4/2 bfloat16 layers with a small output use `conv_down`; the
    input is cast by `_in_compute_dtype`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        keras_compat.skip_input_casts(self)

    def call(self, inputs):
        _CONVOLVED.last = None
        return super().call(_in_compute_dtype(self, inputs))

    def convolution_op(self, inputs, kernel):
        x = tf.convert_to_tensor(inputs)
        path = (_fast_path(self, x, (x.shape[1] // 2, x.shape[2] // 2), x.shape[-1],
                           self.filters) if x.shape.rank == 4 and x.shape[1] else None)
        if path is None:
            return super().convolution_op(x, _kernel_as(kernel, x))
        kernel = _kernel_as(kernel, x)
        applied = _applied_by_native_op(x)
        if applied is not None and path == "kernel_grad" and _padded_s2d_runs(x, self.filters):
            # the activation again, written in the padded space-to-depth form; its first
            # output goes unused and is pruned
            apply, scope = applied
            return conv_down_padded(_made_again(scope, apply, padded_y=True), kernel)
        fn = {"matmul": conv_down, "kernel_grad": conv_down_kernel_grad,
              "few_channels": conv_down_few_channels}[path]
        y = fn(x, kernel)
        if (path == "few_channels" and native_ops.activation_kernel_grad_runs(x, y)
                and native_ops.conv_few_channels_runs(x, self.filters)):
            _CONVOLVED.last = (y, (x, kernel))  # a LeakyReLU on y may take both together
        return y


@keras.saving.register_keras_serializable(package="dcgan_keras")
class Conv2DTranspose(keras.layers.Conv2DTranspose):
    """keras.layers.Conv2DTranspose; 4x4/2 bfloat16 layers with a small input use `conv_up`;
    the input is cast by `_in_compute_dtype`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        keras_compat.skip_input_casts(self)

    def call(self, inputs):
        x = _in_compute_dtype(self, inputs)
        path = (_fast_path(self, x, tuple(x.shape[1:3]), self.filters, x.shape[-1])
                if x.shape.rank == 4 and x.shape[1] and self.output_padding is None else None)
        if path is None:
            return super().call(x)
        fn = {"matmul": conv_up, "kernel_grad": conv_up_kernel_grad,
              "few_channels": conv_up_few_channels}[path]
        kernel = _kernel_as(self.kernel, x)
        outputs = fn(x, kernel)
        _DECONVOLVED.last = None
        if (path == "kernel_grad" and not self.use_bias
                and self.activation in (None, keras.activations.linear)
                and _padded_s2d_runs(outputs, x.shape[-1])):
            # a batch norm may take its padded form
            _DECONVOLVED.last = (outputs, (x, kernel, tf.get_current_name_scope()))
        if self.use_bias:
            outputs = outputs + tf.cast(self.bias, outputs.dtype)
        if self.activation is not None:
            return self.activation(outputs)
        return outputs


def leaky_relu(x, alpha):
    """tf.nn.leaky_relu whose gradient reads the output instead of the input (same signs
    for alpha > 0), so the input need not be kept and oneDNN can fuse the activation into
    the op before it (Conv2D + BiasAdd, FusedBatchNorm)."""
    @tf.custom_gradient
    def fn(x):
        y = tf.nn.leaky_relu(x, alpha)

        def grad(dy):
            if native_ops.usable(y):  # TensorFlow's bfloat16 kernel is slow on some CPUs
                return native_ops.activation_grad(dy, y, alpha)
            return tf.raw_ops.LeakyReluGrad(gradients=dy, features=y, alpha=alpha)

        return y, _in_forward_scope(grad)

    return fn(x)


def _made_last(record, x):
    """What `record` (one of the thread-locals above, its .last an (output, what made it)
    pair) says made `x`, if x is the output it holds, else None."""
    last = getattr(record, "last", None)
    return last[1] if last is not None and last[0] is x else None


def _convolved_few_channels(x):
    """(input, bfloat16 kernel) of `Conv2D` if `x` is the output of this thread's last
    `Conv2D` call, a few-channel one whose activation's kernel gradient runs natively."""
    return _made_last(_CONVOLVED, x)


def _padded_s2d_runs(x, c_out):
    """Whether `conv_down_padded` runs for x [N, H, W, C] to c_out channels here (and
    `conv_up_padded` for its output x from c_out channels): H = W in `PADDED_S2D_SIDES`, and
    `native_ops.kernel_grad` takes the shapes."""
    _, h, w, c = x.shape
    return (h == w and h in PADDED_S2D_SIDES and c % 32 == 0
            and native_ops.kernel_grad_takes(h // 2, w // 2, c, c_out))


def _deconvolved_padded(x):
    """(input, bfloat16 kernel, name scope) of this thread's last `Conv2DTranspose` call if
    `x` is its output and `conv_up_padded` runs for it (`_padded_s2d_runs`), else None."""
    return _made_last(_DECONVOLVED, x)


def _applied_by_native_op(x):
    """(`native_ops.batch_norm_apply` with its arguments, name scope) if `x` is the output
    of this thread's last `LeakyReLU` / `ReLU` that ran it (`_apply_native`), else None."""
    return _made_last(_APPLIED, x)


def _made_again(scope, make, *args, **kwargs):
    """make(*args, **kwargs) in the name scope `scope` (where it was made first): a profile
    (`--profile_steps`) then names the layer it belongs to, and so do its gradients."""
    if not scope:
        return make(*args, **kwargs)
    with tf.name_scope(scope + "/"):
        return make(*args, **kwargs)


def _apply_native(normalized, slope):
    """`native_ops.batch_norm_apply`, remembered for a `Conv2D` that may take its output in
    the padded space-to-depth form instead (`_applied_by_native_op`, `_made_again`)."""
    apply = functools.partial(native_ops.batch_norm_apply, **normalized, slope=slope)
    y = apply()
    _APPLIED.last = (y, (apply, tf.get_current_name_scope()))
    return y


def _normalized_by_native_op(x):
    """The arguments of `native_ops.batch_norm_apply` if `x` is the output of this thread's
    last `BatchNormalization` call that ran the native op, else None."""
    return _made_last(_NORMALIZED, x)


@keras.saving.register_keras_serializable(package="dcgan_keras")
class LeakyReLU(keras.layers.LeakyReLU):
    """keras.layers.LeakyReLU; under TensorFlow its gradient is taken from its output, and
    after a `BatchNormalization` in training that ran the native op it is that op's
    activation (one pass, `native_ops`); right after a few-channel `Conv2D` whose
    activation's kernel gradient runs natively it is `conv_down_leaky_relu` (the Conv2D's
    own product then goes unused and is pruned)."""

    def call(self, inputs):
        if keras.backend.backend() != "tensorflow" or self.negative_slope <= 0:
            return super().call(inputs)
        normalized = _normalized_by_native_op(inputs)
        if normalized is not None:
            return _apply_native(normalized, self.negative_slope)
        convolved = _convolved_few_channels(inputs)
        if convolved is not None:  # the convolution again, with both layers' gradient
            return conv_down_leaky_relu(*convolved, self.negative_slope)
        return leaky_relu(inputs, self.negative_slope)


@keras.saving.register_keras_serializable(package="dcgan_keras")
class ReLU(keras.layers.ReLU):
    """keras.layers.ReLU; after a `BatchNormalization` in training that ran the native op
    it is that op's activation (one pass, `native_ops`)."""

    def call(self, inputs):
        normalized = (_normalized_by_native_op(inputs) if self.max_value is None
                      and not self.negative_slope and not self.threshold else None)
        if normalized is not None:
            return _apply_native(normalized, 0.0)
        return super().call(inputs)


@keras.saving.register_keras_serializable(package="dcgan_keras")
class Dense(keras.layers.Dense):
    """keras.layers.Dense whose input is cast by `_in_compute_dtype` and whose kernel, in
    bfloat16, by `native_ops.cast` (G's projection). A float32 layer with one output on
    bfloat16 features (D's logit) is `native_ops.logit` where it runs: the same float32
    sums without a float32 copy of the features."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        keras_compat.skip_input_casts(self)

    def call(self, inputs, training=None):
        x = tf.convert_to_tensor(inputs)
        if self.lora_enabled or self.quantization_mode:
            return super().call(_in_compute_dtype(self, x), training=training)
        if self.compute_dtype == "float32" and native_ops.logit_runs(x, self.kernel):
            y = native_ops.logit(x, keras_compat.own_dtype_value(self.kernel))
        else:
            x = _in_compute_dtype(self, x)
            y = keras.ops.matmul(x, _kernel_as(self.kernel, x))
        if self.bias is not None:
            y = y + tf.cast(self.bias, y.dtype)
        return self.activation(y) if self.activation is not None else y


@keras.saving.register_keras_serializable(package="dcgan_keras")
class Activation(keras.layers.Activation):
    """keras.layers.Activation whose input is cast by `_in_compute_dtype` (G's float32
    tanh)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        keras_compat.skip_input_casts(self)

    def call(self, inputs):
        return super().call(_in_compute_dtype(self, inputs))
