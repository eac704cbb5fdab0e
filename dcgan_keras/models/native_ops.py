"""C++ ops for bfloat16 training on CPUs with AVX512-BF16 (Zen 4, Sapphire Rapids and
later), which TensorFlow 2.21 lacks: a training batch norm fused with the ReLU / LeakyReLU
after it, the im2col and col2im of the products that `fast_layers` computes as matmuls,
a LeakyReLU gradient, the float32 <-> bfloat16 casts of the layers' kernels, and on CPUs
with AMX the convolutions' kernel gradients (`kernel_grad`).

TensorFlow runs a DCGAN block's batch norm and activation as two ops, and their gradients
as two more: 5 passes over the activations forward and 8 backward, where 3 and 5 suffice.
On a 2-core Zen 4 (batch 128, `benchmarks/batch_norm_ops.py`) the pair's forward +
gradient took 5.07 ms at 16x16x128 (D's second block) and 7.86 ms at 32x32x64 (G's
third), the native op 2.36 and 3.77 ms; over the 64x64 nets' seven batch norms, 26.6 ms
against 13.1.

Use: `fast_layers.BatchNormalization` computes its statistics with `batch_norm` in
training; a `fast_layers.LeakyReLU` / `fast_layers.ReLU` that receives its output applies
the normalisation and itself in one pass (`batch_norm_apply`), and the batch norm's own
output is then never computed. A LeakyReLU with no batch norm before it (D's first
layer) takes its gradient with `activation_grad`: TensorFlow's bfloat16 LeakyReluGrad is an
Eigen kernel that moved ~7 GB/s on a 2-core Sapphire Rapids-class Xeon (7 ms a call at
128x32x32x64, three calls a step). `fast_layers`' convolutions cast their float32 kernels
with `cast` instead of Keras' autocast (TensorFlow's Cast), and their gradients back. Gradients go through the batch statistics as TensorFlow's
fused batch norm does; `tests/models/test_native_ops.py` checks them against it.

The source (models/native/ops.cc) is compiled on first use with the system's C++
compiler (`$CXX`, else g++) against the installed TensorFlow's headers (~10 s), into
`$DCGAN_KERAS_CACHE` (default ~/.cache/dcgan_keras), one file per source, TensorFlow,
compiler and CPU; `make install` builds it ahead (`python -m dcgan_keras.models.native_ops`).
`DCGAN_KERAS_NATIVE_OPS=0` turns it off. Without a compiler, on other CPUs, on GPUs, in
float32 or under XLA the layers use TensorFlow's ops (the same results up to rounding).
"""
import ctypes
import fcntl
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import threading

import tensorflow as tf
from absl import logging
from tensorflow.python.ops import control_flow_util

from dcgan_keras.utils.cpu import amx_hidden, cpu_flags

SOURCE = os.path.join(os.path.dirname(__file__), "native", "ops.cc")
FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-shared", "-fPIC", "-w"]
REQUIRED_CPU_FLAGS = {"avx512f", "avx512_bf16"}


def compile_flags():
    """FLAGS for this CPU. Where it has AVX512-FP16 (Sapphire Rapids and later), -march=native
    turns on Eigen's float16 packet code, which g++ 12 cannot compile (TensorFlow 2.21's
    headers, PacketMathFP16.h); the op uses no float16, so that extension is turned off.
    With $DCGAN_KERAS_AMX=0 (`cpu.amx_hidden`) AMX is turned off too: the library then has
    the ops of a CPU without it."""
    return (FLAGS + (["-mno-avx512fp16"] if "avx512_fp16" in cpu_flags() else [])
            + (["-mno-amx-tile", "-mno-amx-bf16", "-mno-amx-int8"] if amx_hidden() else []))

_lock = threading.Lock()
_loaded = {}  # "library" -> the loaded module, or "error" -> why there is none
_REGISTERED = set()


class NativeOpError(RuntimeError):
    """The native op could not be built or loaded."""


def compiler():
    """The C++ compiler: $CXX, else g++ or c++ on the PATH, or None."""
    for name in (os.environ.get("CXX"), "g++", "c++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def cache_dir():
    return os.path.join(os.environ.get("DCGAN_KERAS_CACHE")
                        or os.path.join(os.path.expanduser("~"), ".cache", "dcgan_keras"),
                        "native")


def library_path(cxx):
    """Where the library built from this source for this TensorFlow, compiler and CPU is."""
    key = hashlib.sha256()
    with open(SOURCE, "rb") as f:
        key.update(f.read())
    for part in (tf.__version__, cxx, " ".join(compile_flags()), " ".join(tf.sysconfig.get_compile_flags()),
                 " ".join(tf.sysconfig.get_link_flags()), platform.machine(),
                 " ".join(sorted(cpu_flags()))):
        key.update(part.encode() + b"\0")
    return os.path.join(cache_dir(), f"ops-{key.hexdigest()[:16]}.so")


def build():
    """Compiles the op if this source, TensorFlow, compiler and CPU have no library yet.

    Returns:
        the library's path.
    Raises:
        NativeOpError: no compiler, or the compilation failed (with its message).
    """
    cxx = compiler()
    if cxx is None:
        raise NativeOpError("no C++ compiler (set $CXX or install g++)")
    path = library_path(cxx)
    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build when several processes start at once
        if os.path.exists(path):
            return path
        logging.info("building the native bfloat16 ops (once, ~10 s): %s", path)
        partial = f"{path}.{os.getpid()}.tmp"
        command = ([cxx] + compile_flags() + tf.sysconfig.get_compile_flags() + [SOURCE, "-o", partial]
                   + tf.sysconfig.get_link_flags())
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise NativeOpError(f"{cxx} did not run: {e}") from e
        if done.returncode:
            if os.path.exists(partial):
                os.remove(partial)
            raise NativeOpError(f"{cxx} failed ({done.returncode}): "
                                f"{first_error(done.stderr)}")
        os.replace(partial, path)  # whole or absent, for every process
    return path


def first_error(stderr):
    """The line of a compiler's output that says what went wrong: its first error, else its
    last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["(no output)"])[0 if errors else -1]


def disabled_reason():
    """Why the native op is not used on this machine and setting, or None if it may be."""
    if os.environ.get("DCGAN_KERAS_NATIVE_OPS", "1") == "0":
        return "DCGAN_KERAS_NATIVE_OPS=0"
    missing = REQUIRED_CPU_FLAGS - cpu_flags()
    if missing:
        return "the CPU lacks " + ", ".join(sorted(missing))
    if tf.config.list_logical_devices("GPU"):
        return "GPUs are visible (the op runs on CPUs only)"
    return None


def library():
    """The loaded op library, or None (`error()` says why); built on the first call."""
    with _lock:
        if not _loaded:
            reason = disabled_reason()
            if reason:
                _loaded["error"] = reason
            else:
                try:
                    _loaded["library"] = tf.load_op_library(build())
                    _register_gradients()
                except (NativeOpError, tf.errors.OpError, OSError) as e:
                    _loaded["error"] = str(e)
                    logging.warning("the native bfloat16 ops is off, TensorFlow's ops run "
                                    "instead: %s", e)
        return _loaded.get("library")


def error():
    """Why `library()` returned None, or None."""
    library()
    return _loaded.get("error")


def _runs_here():
    """Whether the ops can run in the graph being built: built for this CPU, and not
    inside an XLA-compiled function."""
    return (not control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())
            and library() is not None)


def usable(x):
    """Whether a batch norm of `x` in training can use the op here: bfloat16, [..., C],
    on a CPU with the op built, and not inside an XLA-compiled function."""
    return (x.dtype == tf.bfloat16 and x.shape.rank is not None and x.shape.rank >= 2
            and _runs_here())


def batch_norm(x, gamma, beta, epsilon, slope=1.0, padded_x=False):
    """Training batch norm over all axes but the last, then the activation `slope` (1: none,
    0: ReLU, else LeakyReLU). Returns (y, mean, biased variance); y is not computed when
    unused. The statistics' gradients are not followed (they feed moving averages and
    `batch_norm_apply`, whose gradient goes through them). With `padded_x`, x [N, H, W, C]
    is given as `padded_space_to_depth(x)` (its padding not read); y is [N, H, W, C]."""
    return library().dcgan_batch_norm(x, gamma, beta, epsilon=epsilon, slope=slope,
                                      padded_x=padded_x)


def batch_norm_apply(x, mean, variance, gamma, beta, epsilon, slope, padded_x=False,
                     padded_y=False):
    """`batch_norm`'s y from its statistics (`mean`, `variance` must be `batch_norm(x)`'s:
    the gradient to x goes through them). x [N, H, W, C] (H and W even for either form) is
    given as `padded_space_to_depth(x)` with `padded_x` (its padding not read), and y is
    written as `padded_space_to_depth(y)` with `padded_y`, in the same one pass. The
    gradient reads dy in y's form and writes dx in x's (with zeros on the padding)."""
    return library().dcgan_batch_norm_apply(x, mean, variance, gamma, beta, epsilon=epsilon,
                                            slope=slope, padded_x=padded_x,
                                            padded_y=padded_y)


def padded_space_to_depth(x):
    """x [N, H, W, C] padded by one pixel of zeros on each side, then each 2x2 block of
    pixels one pixel of 4 C values ordered (dh, dw, c): [N, H/2 + 1, W/2 + 1, 4 C]. A 4x4 /
    stride-2 / "same" convolution of x is a 2x2 / stride-1 / "valid" one of this form
    (`fast_layers.conv_down_padded`). TensorFlow's ops; the native ones write and read the
    form directly."""
    return tf.nn.space_to_depth(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), 2)


def from_padded_space_to_depth(p):
    """x from `padded_space_to_depth(x)`."""
    return tf.nn.depth_to_space(p, 2)[:, 1:-1, 1:-1, :]


def activation_grad(dy, y, slope):
    """The gradient of a LeakyReLU (`slope` > 0) from its output `y`: dy where y > 0, else
    slope * dy, bit for bit TensorFlow's LeakyReluGrad (`slope` rounded to bfloat16 as
    there), in one pass at the memory's rate."""
    return library().dcgan_activation_grad(dy, y, slope=slope)


def im2col(x):
    """[N, H, W, C] -> [N, H/2, W/2, 16 C]: the patches of a 4x4 / stride-2 / "same"
    convolution, columns ordered (kh, kw, c), zeros outside x (`fast_layers._patches`)."""
    return library().dcgan_im2_col(x)


def col2im(cols):
    """[N, h, w, 16 C] patch columns of a 4x4 / stride-2 / "same" transposed convolution,
    ordered as `im2col`'s -> its [N, 2h, 2w, C] output, each value the float32 sum of its
    overlapping entries rounded once. The two ops map a patch entry to the same pixel, so
    each one's gradient is the other."""
    return library().dcgan_col2_im(cols)


def activation_kernel_grad_runs(x, y):
    """Whether `activation_kernel_grad` takes x [N, H, W, C] and a LeakyReLU output y of the
    convolution's shape here: `kernel_grad`'s shapes with at most 4 channels in x."""
    return kernel_grad_runs(x, y) and x.shape[-1] <= MAX_FEW_CHANNELS


def conv_few_channels_runs(x, c_out):
    """Whether `conv_few_channels` takes bfloat16 x [N, H, W, C] to c_out channels here:
    C at most 4, H and W even, c_out a multiple of 16, on a CPU with AMX granted."""
    return (x.dtype == tf.bfloat16 and x.shape.rank == 4 and None not in x.shape[1:]
            and 0 < x.shape[3] <= MAX_FEW_CHANNELS and x.shape[1] % 2 == 0
            and x.shape[2] % 2 == 0 and c_out % 16 == 0 and _runs_here()
            and hasattr(library(), "dcgan_conv_few_channels") and amx_granted())


def conv_few_channels(x, kernel, slope=1.0):
    """leaky_relu(conv2d(x, kernel, 2, "SAME"), slope) (slope 1: the convolution alone) for
    x [N, H, W, C <= 4] and kernel [4, 4, C, C'], C' a multiple of 16, on AMX tiles
    (`conv_few_channels_runs`); float32 sums rounded once. Where oneDNN's ran at ~0.2 of
    the matmul peak (D's first layer, G's output layer's input gradient)."""
    return library().dcgan_conv_few_channels(x, kernel, slope=slope)


def activation_kernel_grad(x, dy, y, slope):
    """kernel_grad(x, activation_grad(dy, y, slope)) in one op, bit for bit: the kernel
    gradient of a convolution of few channels followed by a LeakyReLU, from the
    activation's output y and its gradient dy, the activation's gradient never written."""
    return library().dcgan_activation_kernel_grad(x, dy, y, slope=slope)


def bfloat16_parts(gradient):
    """The bfloat16 tensors a float32 gradient in a graph is the cast of (DcganToFloat) or
    the sum of such casts (AddN, AddV2; through Identity and IdentityN), in order; None
    otherwise (also eagerly, where a tensor keeps no op, and where the ops do not run)."""
    try:
        op = gradient.op
    except AttributeError:
        return None
    while op.type in ("Identity", "IdentityN"):
        gradient = op.inputs[gradient.value_index if op.type == "IdentityN" else 0]
        op = gradient.op
    ops = [t.op for t in op.inputs] if op.type in ("AddN", "AddV2") else [op]
    if not all(o.type == "DcganToFloat" for o in ops) or not _runs_here():
        return None
    return [o.inputs[0] for o in ops]


def adam(var, m, v, grads, beta1_power, beta2_power, lr, beta1, beta2, epsilon):
    """(new var, m, v): ResourceApplyAdam's update of a float32 variable `var` with slots
    `m`, `v` (values) by the float32 sum of the bfloat16 `grads` (`bfloat16_parts`), read
    as they are instead of through their float32 casts."""
    return library().dcgan_adam(var, m, v, grads, beta1_power, beta2_power, lr, beta1,
                                beta2, epsilon)


def logit_runs(x, kernel):
    """Whether `logit` takes bfloat16 features x [N, K] and a float32 kernel (a tensor or a
    variable) [K, 1] here."""
    return (x.dtype == tf.bfloat16 and tf.as_dtype(kernel.dtype) == tf.float32
            and x.shape.rank == 2 and tuple(kernel.shape)[1:] == (1,)
            and len(kernel.shape) == 2 and _runs_here())


def logit(x, kernel):
    """x [N, K] bfloat16 @ kernel [K, 1] float32 -> [N, 1] float32, summed in float32: a
    float32 linear layer with one output on bfloat16 features (D's logit) without the
    float32 copy of x that casting it takes. Its input gradient is dy kernel^T rounded to
    bfloat16 (bit for bit the float32 gradient cast back), its kernel gradient x^T dy in
    float32."""
    return library().dcgan_logit(x, kernel)


# The output pixels of an image up to which `kernel_grad` runs: its panels (whole images)
# then fit in L2; measured at 16x16 (and 32x32 with an image's channels) on the AMX Xeon.
MAX_PIXELS, MAX_FEW_PIXELS = 16 * 16, 32 * 32
MAX_FEW_CHANNELS = 4  # the op's kernel for an image's channels


def kernel_grad_takes(h, w, c, c_out, n=None):
    """Whether `kernel_grad` takes x [n, 2h, 2w, c] and dy [n, h, w, c_out] here: built with
    AMX (the CPU has it), c a multiple of 32 or 1-4 (an image's channels), c_out a multiple
    of 32, w even, and an image's h w output pixels filling whole tiles (a multiple of 32)
    or, with c a multiple of 32, a tile's 32 pixels spanning whole images (h w divides 32:
    4x4, and the batch n given with n h w a multiple of 32); at most the sizes it was
    measured faster at (16x16 output pixels, 32x32 with 1-4 channels: a larger image's
    panel outgrows L2)."""
    few = 0 < c <= MAX_FEW_CHANNELS
    fills = (h * w) % 32 == 0 or (not few and h * w > 0 and 32 % (h * w) == 0
                                  and n is not None and (n * h * w) % 32 == 0)
    return ((c % 32 == 0 or few) and c_out % 32 == 0 and w % 2 == 0 and fills
            and h * w <= (MAX_FEW_PIXELS if few else MAX_PIXELS)
            and _runs_here() and hasattr(library(), "dcgan_kernel_grad") and amx_granted())


@functools.cache
def amx_granted():
    """Whether Linux lets this process use AMX's tile registers (arch_prctl
    ARCH_REQ_XCOMP_PERM for XTILEDATA, Linux 5.16 and later), which the op asks for too."""
    try:
        return ctypes.CDLL(None, use_errno=True).syscall(158, 0x1023, 18) == 0
    except (OSError, AttributeError):
        return False


def kernel_grad_runs(x, dy):
    """Whether `kernel_grad` runs for these bfloat16 tensors here (`kernel_grad_takes`)."""
    return (x.dtype == dy.dtype == tf.bfloat16 and x.shape.rank == 4 and dy.shape.rank == 4
            and None not in x.shape[1:] and None not in dy.shape[1:]
            and kernel_grad_takes(*dy.shape[1:3], x.shape[3], dy.shape[3], n=x.shape[0]))


def kernel_grad(x, dy, padded_s2d=False):
    """d loss / d kernel [4, 4, C, C'] of y = conv2d(x [N, H, W, C], kernel, stride 2,
    "same") from dy [N, H/2, W/2, C'], on AMX tiles without a patch matrix in memory: float32
    sums rounded once (`kernel_grad_runs` says where it runs). With `padded_s2d`, x is given
    as `padded_space_to_depth(x)` (C a multiple of 32): the same sums, bit for bit."""
    return library().dcgan_kernel_grad(x, dy, padded_s2d=padded_s2d)


def matmul_runs(a, b, transpose_a=False, transpose_b=False):
    """Whether `matmul` takes these tensors here: bfloat16 matrices of static shapes whose
    M, K and N are whole multiples of 32, built with AMX and AMX granted."""
    if not (a.dtype == b.dtype == tf.bfloat16 and a.shape.rank == 2 and b.shape.rank == 2
            and None not in a.shape and None not in b.shape):
        return False
    m, k = a.shape[::-1] if transpose_a else a.shape
    k_b, n = b.shape[::-1] if transpose_b else b.shape
    return (k == k_b and m % 32 == 0 and k % 32 == 0 and n % 32 == 0 and m * k * n > 0
            and _runs_here() and hasattr(library(), "dcgan_mat_mul") and amx_granted())


def matmul(a, b, transpose_a=False, transpose_b=False):
    """tf.matmul of bfloat16 matrices on AMX tiles (`matmul_runs` says where): float32 sums
    over all of K, each rounded once to bfloat16, as oneDNN's bfloat16 MatMul rounds (the
    order of the sums may differ)."""
    return library().dcgan_mat_mul(a, b, transpose_a=transpose_a, transpose_b=transpose_b)


def conv_matmul_runs(x, kernel):
    """Whether `conv_matmul` takes x [N, H, W, C] and kernel [16 C, C'] here: bfloat16 of
    static shapes, H and W even, 16 C and C' multiples of 32, N H W / 4 a multiple of 32;
    built with AMX and AMX granted."""
    if not (x.dtype == kernel.dtype == tf.bfloat16 and x.shape.rank == 4
            and kernel.shape.rank == 2 and None not in x.shape and None not in kernel.shape):
        return False
    n, hh, ww, c = x.shape
    return (hh % 2 == 0 and ww % 2 == 0 and kernel.shape[0] == 16 * c and c > 0
            and (16 * c) % 32 == 0 and kernel.shape[1] % 32 == 0 and kernel.shape[1] > 0
            and n * hh * ww > 0 and (n * hh * ww // 4) % 32 == 0
            and _runs_here() and hasattr(library(), "dcgan_conv_mat_mul") and amx_granted())


def conv_matmul(x, kernel):
    """conv2d(x [N, H, W, C], kernel reshaped [16 C, C'], stride 2, "same") -> [N, H/2, W/2,
    C']: `matmul(im2col(x), kernel)` in one op (`conv_matmul_runs` says where), each block
    of the patch matrix built in L2 as the AMX matmul takes it; the same sums, bit for bit."""
    return library().dcgan_conv_mat_mul(x, kernel)


def conv_transpose_runs(dy, kernel):
    """Whether `conv_transpose` takes dy [N, h, w, C'] and kernel [4, 4, C, C'] here:
    bfloat16 of static shapes, C and C' multiples of 32, and dy's pixels in pairs of runs of
    16 positions of an image (w a multiple of 16 or dividing 16, h w / 16 even, or 1 with N
    even: 4x4); built with AMX and AMX granted."""
    if not (dy.dtype == kernel.dtype == tf.bfloat16 and dy.shape.rank == 4
            and kernel.shape.rank == 4 and None not in dy.shape
            and None not in kernel.shape):
        return False
    n, h, w, c_out = dy.shape
    runs = h * w // 16
    return (tuple(kernel.shape[:2]) == (4, 4) and kernel.shape[3] == c_out
            and kernel.shape[2] % 32 == 0 and kernel.shape[2] > 0 and c_out % 32 == 0
            and c_out > 0 and w > 0 and (w % 16 == 0 or 16 % w == 0) and (h * w) % 16 == 0
            and runs > 0 and (runs % 2 == 0 or (runs == 1 and n % 2 == 0))
            and _runs_here() and hasattr(library(), "dcgan_conv_transpose") and amx_granted())


def conv_transpose(dy, kernel):
    """tf.nn.conv2d_transpose(dy [N, h, w, C'], kernel [4, 4, C, C'], stride 2, "same") ->
    [N, 2h, 2w, C] on AMX tiles (`conv_transpose_runs` says where): float32 sums over the
    four taps of each output pixel and all C', rounded once."""
    return library().dcgan_conv_transpose(dy, kernel)


def padded_kernels_runs(kernel):
    """Whether `padded_kernels` takes this bfloat16 kernel [4, 4, C, C'] here (4 C and C'
    multiples of 32; built with AMX, where the padded form runs)."""
    return (kernel.dtype == tf.bfloat16 and kernel.shape.rank == 4
            and None not in kernel.shape and tuple(kernel.shape[:2]) == (4, 4)
            and (4 * kernel.shape[2]) % 32 == 0 and kernel.shape[3] % 32 == 0
            and kernel.shape.num_elements() > 0
            and _runs_here() and hasattr(library(), "dcgan_padded_kernels"))


def padded_kernels(kernel):
    """(k [2, 2, 4 C, C'], flipped [2, 2, C', 4 C]) from kernel [4, 4, C, C'], bit for bit
    `fast_layers.padded_kernel` and its flip (`fast_layers._padded_kernels`), one native
    op instead of a Transpose, a ReverseV2 and a Transpose."""
    return library().dcgan_padded_kernels(kernel)


def cast(x, dtype):
    """tf.cast(x, dtype), bit for bit: between float32 and bfloat16 one native op where
    the ops run (TensorFlow's Cast there moved ~5-9 GB/s on the AMX Xeon), else
    TensorFlow's. Its gradient is the cast back."""
    x, dtype = tf.convert_to_tensor(x), tf.as_dtype(dtype)
    if {x.dtype, dtype} == {tf.float32, tf.bfloat16} and _runs_here():
        if dtype == tf.bfloat16:
            return library().dcgan_to_bfloat16(x)
        return library().dcgan_to_float(x)
    return tf.cast(x, dtype)


def _grad(op, dy, x, mean, variance, gamma, beta, padded_y=False):
    return library().dcgan_batch_norm_grad(
        dy, x, mean, variance, gamma, beta, epsilon=op.get_attr("epsilon"),
        slope=op.get_attr("slope"), padded_x=op.get_attr("padded_x"), padded_y=padded_y)


def _register_gradients():
    if _REGISTERED:
        return
    _REGISTERED.add(True)  # once per process: TensorFlow refuses a second registration

    @tf.RegisterGradient("DcganBatchNorm")
    def _batch_norm_grad(op, dy, unused_dmean, unused_dvariance):
        x, gamma, beta = op.inputs
        dx, dgamma, dbeta = _grad(op, dy, x, op.outputs[1], op.outputs[2], gamma, beta)
        return dx, dgamma, dbeta

    @tf.RegisterGradient("DcganIm2Col")
    def _im2col_grad(op, dpatches):
        return col2im(dpatches)  # each entry added back to its pixel

    @tf.RegisterGradient("DcganCol2Im")
    def _col2im_grad(op, dy):
        return im2col(dy)  # each entry takes its pixel's gradient

    @tf.RegisterGradient("DcganToBfloat16")
    def _to_bfloat16_grad(op, dy):
        return library().dcgan_to_float(dy)

    @tf.RegisterGradient("DcganToFloat")
    def _to_float_grad(op, dy):
        return library().dcgan_to_bfloat16(dy)

    @tf.RegisterGradient("DcganMatMul")
    def _matmul_grad(op, dc):
        a, b = op.inputs
        ta, tb = op.get_attr("transpose_a"), op.get_attr("transpose_b")
        da = (tf.matmul(b, dc, transpose_a=tb, transpose_b=True) if ta
              else tf.matmul(dc, b, transpose_b=not tb))
        db = (tf.matmul(dc, a, transpose_a=True, transpose_b=ta) if tb
              else tf.matmul(a, dc, transpose_a=not ta))
        return da, db

    @tf.RegisterGradient("DcganLogit")
    def _logit_grad(op, dy):
        x, kernel = op.inputs
        return (library().dcgan_logit_input_grad(dy, kernel),
                library().dcgan_logit_kernel_grad(x, dy))

    @tf.RegisterGradient("DcganBatchNormApply")
    def _apply_grad(op, dy):
        x, mean, variance, gamma, beta = op.inputs
        dx, dgamma, dbeta = _grad(op, dy, x, mean, variance, gamma, beta,
                                  padded_y=op.get_attr("padded_y"))
        return dx, None, None, dgamma, dbeta


if __name__ == "__main__":  # make install: build ahead, or say why not
    reason = disabled_reason()
    if reason:
        print(f"native bfloat16 ops not needed: {reason}")
        sys.exit(0)
    try:
        print(f"native bfloat16 ops: {build()}")
    except NativeOpError as e:
        print(f"native bfloat16 ops not built ({e}); TensorFlow's ops will run instead")
