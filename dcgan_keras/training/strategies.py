"""tf.distribute strategies by name, and where this process sits in the cluster."""
import dataclasses

import tensorflow as tf


@dataclasses.dataclass
class Cluster:
    """Where this process runs.

    Attributes:
        strategy: the tf.distribute.Strategy.
        num_workers: processes that take part (1 unless multi-worker).
        worker_index: this process's index among them.
        is_chief: whether this process writes checkpoints, summaries and samples.
    """
    strategy: tf.distribute.Strategy
    num_workers: int = 1
    worker_index: int = 0
    is_chief: bool = True


def make_cluster(name="default", tpu=""):
    """Builds the strategy named by --strategy.

    Args:
        name: "default" (one device), "mirrored" (all local GPUs, or the logical CPU
            devices when there are none), "multi_worker" (MultiWorkerMirroredStrategy,
            configured by the TF_CONFIG environment variable), or "tpu".
        tpu: TPU address / name for TPUClusterResolver ("" = local or from the
            environment).
    """
    if name == "default":
        return Cluster(tf.distribute.get_strategy())
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return Cluster(tf.distribute.MirroredStrategy(devices))
    if name == "multi_worker":
        # Must come before any other TensorFlow op: it configures the collective ops of
        # the runtime, which TensorFlow only allows at start-up.
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        resolver = strategy.cluster_resolver
        spec = resolver.cluster_spec().as_dict()
        tasks = [("chief", i) for i in range(len(spec.get("chief", [])))]
        tasks += [("worker", i) for i in range(len(spec.get("worker", [])))]
        me = (resolver.task_type, resolver.task_id)
        index = tasks.index(me) if me in tasks else 0
        return Cluster(strategy, num_workers=max(len(tasks), 1), worker_index=index,
                       is_chief=index == 0)
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return Cluster(tf.distribute.TPUStrategy(resolver))
    raise ValueError(f"strategy must be one of default, mirrored, multi_worker, tpu; got {name!r}")


def xla_unsupported_reason(strategy):
    """Why an XLA-compiled replica step cannot run under `strategy` (None if it can).

    TensorFlow compiles a `jit_compile=True` replica function once per replica, with the
    all-reduces inside the XLA cluster, only when every replica device is a GPU (NCCL
    collectives). On other devices it turns `strategy.run(f)` into a single jit-compiled
    function over all replicas (mirrored_run.call_for_each_replica), one XLA cluster on
    one device that then reads the other replicas' variables ("Trying to access resource
    .../replica_1 located in device CPU:1 from device CPU:0"); its CPU ring collectives
    cannot be compiled either ("Only compiling NCCL/auto collective is supported").
    One replica, all-GPU replicas and TPUs are fine.
    """
    if strategy.num_replicas_in_sync == 1 or isinstance(strategy, tf.distribute.TPUStrategy):
        return None
    devices = list(strategy.extended.worker_devices)
    if all(tf.DeviceSpec.from_string(d).device_type == "GPU" for d in devices):
        return None
    return (f"{strategy.num_replicas_in_sync} replicas on {', '.join(devices)}: TensorFlow "
            f"compiles a distributed step with XLA only when every replica is a GPU")
