r"""Where the time of one training step goes: op classes and products against the peak.

    PYTHONPATH=. .venv/bin/python benchmarks/step_profile.py --image_size=64 --batch=128 \
        --out=runs/step_profile64
    PYTHONPATH=. .venv/bin/python benchmarks/step_profile.py --workdir=W   # your own run

The second reads the profile that `train --profile_steps=A,B` wrote into a workdir and
prints the same tables for that run (its nets and batch from W/config.json, no training;
the step's wall time then comes from the span of its ops in the trace, the peak from a
matmul timed now).

Trains the peers' architecture (ngf = ndf = 64, z = 100, RGB, the train binary's
defaults: mixed bfloat16 on a CPU with bfloat16 support) with `DCGAN.fit` on one random
batch held in memory, profiles --profile_steps steps with the train binary's
`--profile_steps` callback (`monitoring.ProfileSteps`, a TensorBoard profile in
OUT/plugins/profile/), and reads the trace back (tf.profiler's XSpace protobuf):

  * every op the executor ran in those steps, its time and its type, summed into classes:
    the products (matmuls and convolutions), BatchNorm, activations, im2col gathers and
    layout copies (gather, pad, slice, transpose, depth-to-space), adds (col2im's block
    sums and gradient sums), casts, Adam, the input pipeline (the step's wait for the
    next batch) and the rest (losses, metrics, random numbers);
  * the step's wall time (the train function's run on the Python thread) and how much of
    it no op was running (executor gaps);
  * per layer and per product (forward, input gradient, kernel gradient): its time, its
    FLOPs (from the static shapes of the same step traced as a graph; 2 FLOPs per
    multiply-add) and the time it would take at the peak below;
  * per class of the other ops: the time they would take at the memory bandwidth (the
    bytes each reads and writes at least, from the traced graph's static shapes, at the
    rate of one large elementwise op, `memory_rate`), and the step's share of the peak
    if they all ran at it and no gaps were left (with one inter-op thread, where op
    times add up to the step).

The peak is that of one large bfloat16 (or float32) matmul in the same process with the
same threads (`matmul_peak`): what the CPU's matmul kernels reach on the best shape, the
bound of a step made of products. Writes OUT/step_profile.json and OUT/step_profile.md.
Measured results: docs/benchmarks.md, "Where the time of a step goes (issue 29)".
"""
import argparse
import collections
import glob
import json
import os
import re
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

PRODUCT_TYPES = ("MatMul", "BatchMatMul", "Conv2D", "Conv2DBackpropInput",
                 "Conv2DBackpropFilter", "FusedConv2D", "FusedMatMul", "DcganKernelGrad",
                 "DcganActivationKernelGrad", "DcganConvFewChannels", "DcganLogit",
                 "DcganLogitInputGrad", "DcganLogitKernelGrad", "DcganMatMul",
                 "DcganConvMatMul", "DcganConvTranspose")
# Kernel (weight) gradients by their type: oneDNN's, and the native AMX op (native_ops).
KERNEL_GRADIENT_TYPES = ("Conv2DBackpropFilter", "DcganKernelGrad", "DcganActivationKernelGrad",
                         "DcganLogitKernelGrad")
KINDS = ("forward", "input gradient", "kernel gradient")
CLASSES = ("products", "BatchNorm", "activations", "gathers and layout copies", "adds",
           "casts", "Adam", "input pipeline", "other ops")


# --- Pure helpers (tested in tests/benchmarks/test_step_profile.py) ---

def split_event(name):
    """'StatefulPartitionedCall/gen_1/MatMul:_MklMatMul' -> ('gen_1/MatMul', 'MatMul'):
    the op's graph name (without the function-call prefixes) and its type (without
    oneDNN's _Mkl / _MklNative prefixes); None for events that are not ops."""
    if "::" in name or ":" not in name:
        return None
    op, kind = name.rsplit(":", 1)
    while op.startswith("StatefulPartitionedCall/") or op.startswith("PartitionedCall/"):
        op = op.split("/", 1)[1]
    return op, re.sub(r"^_Mkl(Native)?", "", kind)


def is_product(op_type):
    return op_type in PRODUCT_TYPES or op_type.startswith("FusedConv2D")


def op_class(op_name, op_type):
    """One of CLASSES for an op of the training step."""
    if is_product(op_type):
        return "products"
    if "BatchNorm" in op_type:
        return "BatchNorm"
    if op_type.startswith("IteratorGetNext") or op_type in ("OptionalGetValue",
                                                            "OptionalHasValue"):
        return "input pipeline"
    if op_type.startswith("ResourceApply") or re.search(r"(^|/)adam(_\d+)?/", op_name):
        return "Adam"
    if (re.match(r"(Leaky)?Relu|Relu6|Elu|Selu|Tanh|Sigmoid|Softplus", op_type)
            or op_type == "DcganActivationGrad"):
        return "activations"
    if op_type in ("GatherV2", "Pad", "PadV2", "Transpose", "DepthToSpace",
                   "SpaceToDepth", "StridedSlice", "Slice", "ConcatV2", "Reshape",
                   "Squeeze", "ExpandDims", "Tile", "StridedSliceGrad", "Identity",
                   "DcganCol2Im", "DcganIm2Col"):
        return "gathers and layout copies"
    if op_type in ("AddN", "AddV2", "Add"):
        return "adds"
    if op_type in ("Cast", "DcganToBfloat16", "DcganToFloat"):
        return "casts"
    return "other ops"


def layer_of(op_name):
    """'gradient_tape/discriminator_3/block2_conv_1/Conv2D' -> 'discriminator/block2_conv'
    (the network and layer, without the call counters TensorFlow adds to name scopes);
    None for an op outside both networks."""
    parts = [re.sub(r"_\d+$", "", p) for p in op_name.split("/")]
    if parts and parts[0] == "gradient_tape":
        parts = parts[1:]
    if len(parts) < 3 or parts[0] not in ("generator", "discriminator"):
        return None
    return f"{parts[0]}/{parts[1]}"


def product_kind(op_name, op_type, transpose_a=False):
    """forward, input gradient or kernel gradient for a product op of the step: under
    gradient_tape/ a kernel (weight) gradient contracts over the batch (a MatMul with
    transpose_a, a Conv2DBackpropFilter, DcganKernelGrad); other gradient products are
    input gradients."""
    if not op_name.startswith("gradient_tape/"):
        return "forward"
    if op_type in KERNEL_GRADIENT_TYPES or transpose_a:
        return "kernel gradient"
    return "input gradient"


def op_flops(op):
    """FLOPs (2 per multiply-add) of a product op of a traced graph from its static
    shapes; None when they are unknown."""
    def shape(tensor):
        dims = tensor.shape.as_list() if tensor.shape.rank is not None else None
        return None if dims is None or None in dims else dims

    if op.type in ("MatMul", "BatchMatMulV2", "BatchMatMul", "BatchMatMulV3", "DcganMatMul"):
        a, out = shape(op.inputs[0]), shape(op.outputs[0])
        if a is None or out is None:
            return None
        adjoint = op.get_attr("transpose_a" if op.type in ("MatMul", "DcganMatMul")
                              else "adj_x")
        contraction = a[-2] if adjoint else a[-1]
        count = 1
        for d in out:
            count *= d
        return 2 * count * contraction
    if op.type in ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter"):
        # All three products of y = conv(x, k): 2 x (N H' W' of the strided side) x |k|.
        # A Conv2D padded explicitly (`fast_layers.conv_down_padded`'s input gradient, a
        # stride-1 convolution padded by the kernel's size - 1) is the transposed
        # convolution of its input: its input's pixels are that side (the outputs it makes
        # on the padding are not the model's products).
        explicit = op.type == "Conv2D" and op.get_attr("padding") == b"EXPLICIT"
        strided = (op.inputs[0] if explicit else
                   op.outputs[0] if op.type == "Conv2D" else op.inputs[2])
        kernel = op.inputs[1] if op.type != "Conv2DBackpropFilter" else op.outputs[0]
        s, k = shape(strided), shape(kernel)
        if s is None or k is None:
            return None
        return 2 * s[0] * s[1] * s[2] * k[0] * k[1] * k[2] * k[3]
    if op.type in ("DcganKernelGrad", "DcganActivationKernelGrad"):  # dy -> [4, 4, C, C']
        s, k = shape(op.inputs[1]), shape(op.outputs[0])
        if s is None or k is None:
            return None
        return 2 * s[0] * s[1] * s[2] * k[0] * k[1] * k[2] * k[3]
    if op.type == "DcganConvMatMul":  # y [N, H', W', C'] from a [16 C, C'] kernel
        s, k = shape(op.outputs[0]), shape(op.inputs[1])
        if s is None or k is None:
            return None
        return 2 * s[0] * s[1] * s[2] * k[0] * k[1]
    if op.type in ("DcganConvFewChannels", "DcganConvTranspose"):
        # y [N, H', W', C'] from a [4, 4, C, C'] kernel; dy [N, h, w, C'] (the strided side)
        # to dx from one
        s = shape(op.outputs[0] if op.type == "DcganConvFewChannels" else op.inputs[0])
        k = shape(op.inputs[1])
        if s is None or k is None:
            return None
        return 2 * s[0] * s[1] * s[2] * k[0] * k[1] * k[2] * k[3]
    if op.type in ("DcganLogit", "DcganLogitInputGrad", "DcganLogitKernelGrad"):
        # x [N, K] @ w [K, 1], dy [N, 1] w^T (a product of contraction 1) and x^T dy
        big = shape(op.outputs[0] if op.type == "DcganLogitInputGrad" else op.inputs[0])
        return None if big is None else 2 * big[0] * big[1]
    return None


def needed_ops(graph):
    """The ops of a traced function graph that run: ancestors of its outputs and of its
    stateful ops (variable updates). A gradient function builds every input's gradient
    (a Conv2D's gives the input and the kernel gradient), and Grappler prunes those that
    nothing uses, such as D's kernel gradients in the G step."""
    roots = [t.op for t in graph.outputs] + [op for op in graph.get_operations()
                                             if op.op_def.is_stateful]
    seen, stack = set(), list(roots)
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return seen


# Ops that hand on their input's buffer (or a handle) instead of moving data.
NO_COPY_TYPES = ("Reshape", "Identity", "IdentityN", "Squeeze", "ExpandDims", "Snapshot",
                 "StopGradient", "ReadVariableOp", "Shape", "Const", "NoOp", "Placeholder")


def op_bytes(op):
    """Bytes an op of a traced graph must read and write at least: its inputs and outputs
    with static shapes, once each (0 for ops that move no data; a ResourceApply* optimizer
    op reads its gradient, the variable and two slots and writes those three back: 7x its
    gradient). None when no size is known."""
    import tensorflow as tf

    def size(tensor):
        if tensor.dtype in (tf.resource, tf.variant) or tensor.shape.rank is None:
            return None
        dims = tensor.shape.as_list()
        if None in dims:
            return None
        count = 1
        for d in dims:
            count *= d
        return count * tensor.dtype.size

    if op.type in NO_COPY_TYPES:
        return 0
    if op.type.startswith("ResourceApply"):
        grad = size(op.inputs[-1]) if op.inputs else None
        return None if grad is None else 7 * grad
    outputs = list(op.outputs)
    if op.type == "DcganBatchNorm" and not outputs[0].consumers():
        outputs = outputs[1:]  # the native op skips y when only the statistics are used
    sizes = [size(t) for t in list(op.inputs) + outputs]
    known = [s for s in sizes if s is not None]
    return sum(known) if known else None


def graph_bytes(graph):
    """{op name: bytes (`op_bytes`)} for the ops of a traced graph that run and are not
    products."""
    found, needed = {}, needed_ops(graph)
    for op in graph.get_operations():
        if op.name in needed and not is_product(op.type):
            moved = op_bytes(op)
            if moved is not None:
                found[op.name] = moved
    return found


FUSABLE_ACTIVATIONS = ("Relu", "Relu6", "Elu", "LeakyRelu", "Tanh", "Sigmoid")


def fused_names(op):
    """Names Grappler may give `op` (a Conv2D or MatMul) once its remapper has fused it
    with the BiasAdd after it and an activation after that: the fused op takes the name
    of the pattern's last node. Follows the output through Identity/IdentityN (a custom
    gradient's wrappers, which Grappler removes)."""
    names, tensors = [], [op.outputs[0]]
    while tensors:
        tensor = tensors.pop()
        for consumer in tensor.consumers():
            if consumer.type == "Identity":
                tensors.append(consumer.outputs[0])
            elif consumer.type == "IdentityN":  # (by name: a tensor's == builds an op)
                names_in = [t.name for t in consumer.inputs]
                tensors.append(consumer.outputs[names_in.index(tensor.name)])
            elif consumer.type == "BiasAdd" and not names:
                names.append(consumer.name)
                tensors = [consumer.outputs[0]]
                break
            elif consumer.type in FUSABLE_ACTIVATIONS and names:
                names.append(consumer.name)
                return names
    return names


def graph_products(graph):
    """{op name: (FLOPs, transpose_a)} for the product ops of a traced graph that run."""
    found, needed = {}, needed_ops(graph)
    for op in graph.get_operations():
        flops = op_flops(op) if op.name in needed else None
        if flops is not None:
            transpose_a = (op.type in ("MatMul", "DcganMatMul")
                           and op.get_attr("transpose_a"))
            found[op.name] = (flops, bool(transpose_a))
    return found


def graph_aliases(graph):
    """{name a fused product may run under: the product's op name} for the convolutions
    and matmuls of a traced graph that run (`fused_names`)."""
    found, needed = {}, needed_ops(graph)
    for op in graph.get_operations():
        if op.name in needed and op.type in ("Conv2D", "MatMul"):
            for alias in fused_names(op):
                found.setdefault(alias, op.name)
    return found


def interval_union(intervals):
    """Total length covered by [start, end) intervals (they may overlap)."""
    total, end = 0, None
    for a, b in sorted(intervals):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def summarize_trace(events, steps, step_seconds, products, peak_flops, moved=None,
                    bandwidth=None, aliases=None):
    """The tables of one profile.

    Args:
        events: (op name, op type, start ps, duration ps) of every op run in the
            profiled steps (names as `split_event` gives them).
        steps: how many steps they cover.
        step_seconds: wall time of each profiled step.
        products: `graph_products` of the step's graph (FLOPs by op name).
        peak_flops: FLOP/s of the reference matmul.
        moved: `graph_bytes` of the step's graph (bytes by op name), optional.
        bandwidth: bytes/s of the reference elementwise op (`copy_bandwidth`), optional.
        aliases: `graph_aliases` of the step's graph (the product a fused op of the trace
            is, by its name), optional.
    Returns:
        dict with "classes" (class -> ms per step), "step_ms", "busy_ms" (time some op
        ran), "products" (rows per layer and kind), "unmatched" (product ops of the trace
        with no FLOPs) and the totals; with `moved` and `bandwidth` also "memory" (per
        class of the other ops: the time of those whose size is known, "sized_ms", and
        the time they would take at the bandwidth, or as they ran if that was faster,
        "floor_ms") and "floor_step_ms" (the
        step with the products as they ran, the sized ops at the bandwidth, the rest as
        they ran and no gaps) with "floor_of_peak" (the share of the peak it would reach),
        and "ceiling_step_ms" / "ceiling_of_peak": the same with the products at the peak,
        the most these ops allow (only fewer bytes, or products faster than the reference
        matmul, go beyond it).
    """
    per_class = collections.Counter()
    rows = {}
    unmatched = collections.Counter()
    sized, floor = collections.Counter(), collections.Counter()
    for name, op_type, _, duration in events:
        ms = duration / 1e9 / steps
        kind = op_class(name, op_type)
        per_class[kind] += ms
        if kind != "products":
            if moved and bandwidth and name in moved:
                sized[kind] += ms
                # an op that ran faster than the rate (its bytes in cache) stays as it ran
                floor[kind] += min(ms, 1e3 * moved[name] / bandwidth / steps)
            continue
        product = (aliases or {}).get(name, name)
        flops, transpose_a = products.get(product, (None, False))
        if flops is None:
            unmatched[name] += ms
            continue
        key = (layer_of(product) or "(outside the nets)",
               product_kind(product, op_type, transpose_a))
        row = rows.setdefault(key, dict(layer=key[0], kind=key[1], ms=0.0, flops=0))
        row["ms"] += ms
        row["flops"] += flops  # per step: every run of the op in the steps, / steps below
    for row in rows.values():
        row["flops"] = row["flops"] / steps
        row["bound_ms"] = 1e3 * row["flops"] / peak_flops
        row["of_peak"] = row["bound_ms"] / row["ms"] if row["ms"] else None
    step_ms = 1e3 * sum(step_seconds) / len(step_seconds)
    busy_ms = interval_union([(s, s + d) for _, _, s, d in events]) / 1e9 / steps
    flops = sum(r["flops"] for r in rows.values())
    extra = {}
    if moved and bandwidth:
        memory = {c: dict(ms=per_class.get(c, 0.0), sized_ms=sized.get(c, 0.0),
                          floor_ms=floor.get(c, 0.0)) for c in CLASSES if c != "products"}
        floor_step = per_class.get("products", 0.0) + sum(
            m["ms"] - m["sized_ms"] + m["floor_ms"] for m in memory.values())
        # The products at the peak instead: what the step's ops allow, whatever the code.
        ceiling_step = 1e3 * flops / peak_flops + floor_step - per_class.get("products", 0.0)
        extra = dict(memory=memory, bandwidth=bandwidth, floor_step_ms=floor_step,
                     floor_of_peak=1e3 * flops / peak_flops / floor_step if floor_step else None,
                     ceiling_step_ms=ceiling_step,
                     ceiling_of_peak=1e3 * flops / peak_flops / ceiling_step
                     if ceiling_step else None)
    return dict(
        step_ms=step_ms, busy_ms=busy_ms, gaps_ms=max(step_ms - busy_ms, 0.0),
        op_ms=sum(per_class.values()),
        classes={c: per_class.get(c, 0.0) for c in CLASSES},  # op time, all threads
        products=sorted(rows.values(), key=lambda r: (r["layer"], KINDS.index(r["kind"]))),
        unmatched=dict(unmatched.most_common()),
        flops=flops, bound_ms=1e3 * flops / peak_flops,
        of_peak=1e3 * flops / peak_flops / step_ms, **extra)


def markdown(summary, header):
    """The two tables of a summary as markdown."""
    step, ops = summary["step_ms"], summary["op_ms"]
    memory = summary.get("memory")
    head = "| op class | ms per step (op time, all threads) | share of op time |"
    if memory:
        gbs = summary["bandwidth"] / 1e9
        head += f" ms of its ops of known size | those at {gbs:.1f} GB/s |"
    lines = [header, "", head, "|---" * head.count(" |") + "|"]
    for name, ms in summary["classes"].items():
        line = f"| {name} | {ms:.1f} | {100 * ms / ops:.1f}% |"
        if memory:
            m = memory.get(name)
            line += f" {m['sized_ms']:.1f} | {m['floor_ms']:.1f} |" if m else " - | - |"
        lines.append(line)
    lines += [f"| **all ops** | **{ops:.1f}** | 100% |" + (" | |" if memory else ""), "",
              f"The step took {step:.1f} ms of wall time; some op ran during "
              f"{summary['busy_ms']:.1f} ms of it (ops overlapped {ops / summary['busy_ms']:.2f}x"
              f" on the executor's threads) and none during {summary['gaps_ms']:.1f} ms "
              f"(executor gaps, the loop and its callbacks).", "",
              "| layer | product | ms per step | GFLOP | ms at the peak | of the peak |",
              "|---|---|---|---|---|---|"]
    for r in summary["products"]:
        lines.append(f"| {r['layer']} | {r['kind']} | {r['ms']:.2f} | {r['flops'] / 1e9:.2f} "
                     f"| {r['bound_ms']:.2f} | {r['of_peak']:.2f} |")
    lines.append(f"| **all products** | | **{summary['classes']['products']:.1f}** | "
                 f"**{summary['flops'] / 1e9:.1f}** | **{summary['bound_ms']:.1f}** | "
                 f"step at {summary['of_peak']:.2f} of the peak |")
    if memory:
        lines += ["", f"With the products as they ran, the other ops of known size at "
                  f"{summary['bandwidth'] / 1e9:.1f} GB/s (the bytes they read and write "
                  f"once, at the rate of one large elementwise op), the rest as they ran "
                  f"and no gaps, the step would take {summary['floor_step_ms']:.1f} ms: "
                  f"{summary['floor_of_peak']:.2f} of the peak (a sum of op times: "
                  f"meaningful with one inter-op thread, where ops do not overlap). With the "
                  f"products at the peak too, it would take {summary['ceiling_step_ms']:.1f} "
                  f"ms: {summary['ceiling_of_peak']:.2f} of the peak, the most these ops' "
                  f"bytes allow at that rate with products no faster than the reference "
                  f"matmul (they ran at {summary['bound_ms'] / summary['classes']['products']:.2f}"
                  f" of its rate)."]
    if summary["unmatched"]:
        lines += ["", "Products without FLOPs (not matched to the traced graph): "
                  + ", ".join(f"{k} {v:.2f} ms" for k, v in summary["unmatched"].items())]
    return "\n".join(lines)


# --- Measurements ---

def best_rate(run, work_per_repeat, seconds):
    """Work per second of `run(repeats)` (`repeats` repeats of the work, returning a
    tensor): the best of windows of about 0.3 s over `seconds` (the least disturbed)."""
    run(1).numpy()
    start = time.perf_counter()
    run(2).numpy()
    repeats = max(1, int(0.3 / max((time.perf_counter() - start) / 2, 1e-6)))
    best, stop = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < stop:
        start = time.perf_counter()
        run(repeats).numpy()
        best = max(best, work_per_repeat * repeats / (time.perf_counter() - start))
    return best


def matmul_peak(dtype="bfloat16", n=2048, seconds=3.0):
    """FLOP/s of an n x n x n matmul in `dtype` with this process's threads (`best_rate`).

    Each product is its own call of a compiled function, nothing else in it: a new product
    every time (no loop for Grappler to hoist it out of) and no other op timed with it. Until
    2026-12-07 the products ran in one compiled loop that also added to `a` each time, so
    as not to be hoisted. Six alternating pairs on the AMX Xeon VM put that form's peak at
    0.90-1.02 of this one's (median 0.99): within the VM's noise, so the fractions of the
    peak measured before stand, but this form times the product alone."""
    import tensorflow as tf
    a = tf.cast(tf.random.stateless_normal([n, n], seed=[1, 2]), dtype)
    b = tf.cast(tf.random.stateless_normal([n, n], seed=[3, 4]), dtype)
    product = tf.function(tf.matmul)

    def run(repeats):
        for _ in range(repeats):
            out = product(a, b)
        return out[0, 0]

    return best_rate(run, 2.0 * n ** 3, seconds)


def elementwise_op(dtype):
    """The reference memory-bound op, x * 2 in `dtype`, as a compiled function of x: one
    op that reads and writes the whole tensor once."""
    import tensorflow as tf
    return tf.function(lambda x: x * tf.cast(2.0, dtype))


def copy_bandwidth(dtype="bfloat16", megabytes=64, seconds=2.0):
    """Bytes/s read and written by one elementwise op (`elementwise_op`) over a tensor of
    `megabytes` in `dtype` with this process's threads, counting its input and output once
    (`best_rate`). The rate a memory-bound op of the step (BatchNorm, an activation, a
    gather, a cast) can move its tensors at.

    Each op is its own call, as in `matmul_peak`, and as the step's ops run: each gets a
    new output from TensorFlow's allocator. Until 2026-12-07 (fifth sitting) the ops ran in
    one compiled loop (y = x * 2, x = y * 0.5), which on the AMX Xeon VM reported 73-92
    GB/s in float32, four times what the step's memory-bound ops can reach: there, one op
    alone moved 20-22 GB/s at 64 and 256 MB, a C++ copy of 64 MB with both threads (the
    buffers reused) 26 GB/s, and the step's largest batch norm gradient 24 GB/s."""
    import tensorflow as tf
    n = megabytes * 2 ** 20 // tf.as_dtype(dtype).size
    x = tf.cast(tf.random.stateless_uniform([n // 1024, 1024], seed=[5, 6]), dtype)
    op = elementwise_op(dtype)

    def run(repeats):
        for _ in range(repeats):
            out = op(x)
        return out[0, 0]

    return best_rate(run, 2.0 * n * x.dtype.size, seconds)


def memory_rate(seconds=2.0):
    """(bytes/s, {dtype: bytes/s}): the rate the memory moves an elementwise op's bytes at,
    the faster of a bfloat16 and a float32 op (`copy_bandwidth`). The float32 op is the
    yardstick where TensorFlow's bfloat16 kernels are compute-bound: on a 2-core Sapphire
    Rapids-class Xeon its bfloat16 x * 2 moved 6-9 GB/s and its float32 one 20-22 GB/s
    (the memory's rate does not depend on what the bytes hold)."""
    rates = {dtype: copy_bandwidth(dtype, seconds=seconds) for dtype in ("bfloat16", "float32")}
    return max(rates.values()), rates


def build(image_size, batch, precision):
    """The peers' architecture, compiled as the train binary compiles it."""
    import keras
    from dcgan_keras.config import TrainConfig
    from dcgan_keras.models import build_dcgan
    from dcgan_keras.training import train_lib
    keras.utils.set_random_seed(0)
    with train_lib.dtype_policy(train_lib.POLICIES[precision]):
        gan = build_dcgan(image_size=image_size, channels=3, z_dim=100, base_width=64)
        gan.compile(*train_lib.make_optimizers(TrainConfig(), precision), jit_compile=False)
    return gan


def train_step_graph(gan, batch, image_size, channels=3):
    """The graph of one train step on a batch of `batch` images (traced, not run)."""
    import tensorflow as tf
    spec = tf.TensorSpec([batch, image_size, image_size, channels], tf.float32)
    return tf.function(gan.train_step).get_concrete_function(spec).graph


def train_step_products(gan, batch, image_size, channels=3):
    """graph_products of one train step on a batch of `batch` images."""
    return graph_products(train_step_graph(gan, batch, image_size, channels))


def read_trace(logdir):
    """Op events (name, type, start ps, duration ps) of the newest profile in logdir."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    paths = sorted(glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb")))
    if not paths:
        raise RuntimeError(f"no profile was written under {logdir}/plugins/profile")
    space = xplane_pb2.XSpace()
    with open(paths[-1], "rb") as f:
        space.ParseFromString(f.read())
    plane = next(p for p in space.planes if p.name == "/host:CPU")
    events = []
    for line in plane.lines:  # the executor's threads; tf_data threads run ahead, apart
        if not line.name.startswith("tf_") or line.name.startswith("tf_data"):
            continue
        for event in line.events:
            op = split_event(plane.event_metadata[event.metadata_id].name)
            if op:
                events.append((op[0], op[1], line.timestamp_ns * 1000 + event.offset_ps,
                               event.duration_ps))
    return events


def step_timer():
    """A Keras callback that records the wall time from the start of each step to the next
    one's (the whole loop: the train function and the callbacks); `.seconds(first, last)`
    gives those of steps first..last (1-based)."""
    import keras

    class StepTimes(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.starts = []

        def on_train_batch_begin(self, batch, logs=None):
            self.starts.append(time.perf_counter())

        def on_train_end(self, logs=None):
            self.starts.append(time.perf_counter())

        def seconds(self, first, last):
            return [b - a for a, b in zip(self.starts[first - 1:last],
                                          self.starts[first:last + 1])]

    return StepTimes()


def peak_of(precision, seconds):
    """(dtype, FLOP/s) of the matmul peak that bounds a step in `precision`."""
    dtype = "bfloat16" if precision == "bfloat16" else "float32"
    return dtype, matmul_peak(dtype, seconds=seconds)


def described(summary, peak, image_size, batch, precision, **extra):
    """A summary with its setting, rate, machine and versions (the JSON's fields)."""
    import keras
    import tensorflow as tf
    summary.update(peak_flops=peak[1], peak_dtype=peak[0], image_size=image_size,
                   batch=batch, precision=precision,
                   images_per_sec=1e3 * batch / summary["step_ms"],
                   flops_per_image=summary["flops"] / batch, machine=machine(),
                   date=time.strftime("%Y-%m-%d"), keras=keras.__version__,
                   tensorflow=tf.__version__, **extra)
    return summary


def profile(args):
    import tensorflow as tf
    from dcgan_keras.training import hardware, monitoring
    precision = hardware.resolve(args.precision).mixed_precision
    print("measuring the matmul peak and the memory bandwidth ...", flush=True)
    peak = peak_of(precision, args.peak_seconds)
    bandwidth, rates = memory_rate(args.peak_seconds)
    print(f"{peak[0]} peak {peak[1] / 1e9:.0f} GFLOP/s; elementwise ops moved "
          + ", ".join(f"{r / 1e9:.1f} GB/s in {d}" for d, r in rates.items())
          + "; tracing the step ...", flush=True)
    gan = build(args.image_size, args.batch, precision)
    graph = train_step_graph(gan, args.batch, args.image_size)
    products, moved, aliases = graph_products(graph), graph_bytes(graph), graph_aliases(graph)
    real = tf.random.uniform([args.batch, args.image_size, args.image_size, 3], -1.0, 1.0)
    data = tf.data.Dataset.from_tensors(real).repeat().prefetch(2)
    first = args.warmup_steps + 1
    last = args.warmup_steps + args.profile_steps
    os.makedirs(args.out, exist_ok=True)
    print(f"training {last} steps, profiling steps {first} to {last} ...", flush=True)
    times = step_timer()
    # The step timer runs first, so the profiler's start and stop fall inside its steps.
    gan.fit(data, epochs=1, steps_per_epoch=last, verbose=0,
            callbacks=[times, monitoring.ProfileSteps(args.out, first, last)])
    summary = summarize_trace(read_trace(args.out), args.profile_steps,
                              times.seconds(first, last), products, peak[1], moved, bandwidth,
                              aliases)
    return described(summary, peak, args.image_size, args.batch, precision)


def from_workdir(args):
    """The tables of the newest profile in a training workdir (see the module doc)."""
    from dcgan_keras import config as config_lib
    from dcgan_keras.training import hardware, train_lib
    config = config_lib.load(args.workdir)
    steps = config_lib.parse_profile_steps(config.profile_steps)
    if steps is None:
        raise ValueError(f"{args.workdir} was not trained with --profile_steps=A,B; train "
                         f"on with it, e.g. --profile_steps=20,25")
    events = read_trace(args.workdir)
    count = steps[1] - steps[0] + 1
    precision = hardware.resolve(config.mixed_precision).mixed_precision
    with train_lib.dtype_policy(train_lib.POLICIES[precision]):
        gan = train_lib.build_model(config)
        gan.compile(*train_lib.make_optimizers(config, precision), jit_compile=False)
    graph = train_step_graph(gan, config.batch_size, config.image_size, config.channels)
    peak = peak_of(precision, args.peak_seconds)
    bandwidth, _ = memory_rate(args.peak_seconds)
    span = (max(s + d for _, _, s, d in events) - min(s for _, _, s, _ in events)) / 1e12
    summary = summarize_trace(events, count, [span / count] * count, graph_products(graph),
                              peak[1], graph_bytes(graph), bandwidth, graph_aliases(graph))
    return described(summary, peak, config.image_size, config.batch_size, precision,
                     workdir=args.workdir, steps=list(steps))


def machine():
    from dcgan_keras.utils.cpu import cpu_model
    return f"{cpu_model() or 'unknown CPU'}, {os.cpu_count()} cores"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--precision", default="auto", choices=("auto", "bfloat16", "none"))
    parser.add_argument("--warmup_steps", type=int, default=5)
    parser.add_argument("--profile_steps", type=int, default=5)
    parser.add_argument("--peak_seconds", type=float, default=3.0)
    parser.add_argument("--out", default="runs/step_profile")
    parser.add_argument("--workdir", default="",
                        help="read this training workdir's --profile_steps profile instead "
                        "(its nets and batch; writes the tables into it)")
    args = parser.parse_args()
    if args.workdir:
        try:
            summary = from_workdir(args)
        except (OSError, ValueError, RuntimeError) as e:
            sys.exit(f"step_profile: {str(e).splitlines()[0]}")
        args.out, args.image_size, args.batch = (args.workdir, summary["image_size"],
                                                 summary["batch"])
    else:
        summary = profile(args)
    header = (f"{args.image_size}x{args.image_size}, batch {args.batch}, {summary['precision']}"
              f"; {summary['machine']}; {summary['date']}; peak "
              f"{summary['peak_flops'] / 1e9:.0f} GFLOP/s ({summary['peak_dtype']} matmul); "
              f"{summary['images_per_sec']:.0f} img/s, "
              f"{summary['flops_per_image'] / 1e9:.2f} GFLOP per image")
    text = markdown(summary, header)
    with open(os.path.join(args.out, "step_profile.json"), "w") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(args.out, "step_profile.md"), "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
