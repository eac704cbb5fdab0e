"""Every place the models rely on Keras internals, each in one small piece that says why.

Keras 3.15 (TensorFlow backend) has no public way to do these; each has a test in
tests/models/test_keras_compat.py that fails loudly when a Keras upgrade removes or
changes what it relies on (then the workaround may be obsolete, or need a new form):

- `adam_slots`: the m and v slot variables of one variable of a Keras Adam, for an Adam
  subclass's own `update_step` (`models.adam`).
- `make_replica_local`: an "only_first_replica" counter (optimizer.iterations) made
  replica-local, so an XLA-compiled replica step needs no `merge_call`.
- `reducible_logs`: a train step's scalar logs as [1] vectors under a multi-worker
  strategy, the shape Keras' cross-worker mean expects.
- `OpensDataOnce`: a model mixin that skips Keras' symbolic build in `fit`, which opens a
  second iterator over the data under a tf.distribute strategy.
- `clone_network`: `keras.models.clone_model` with the weights, keeping the class of a
  Functional subclass (the package's Generator), which clone_model turns into a plain
  Functional model.
- `own_dtype_value`: a variable's value in its own dtype inside a layer's call, where
  Keras' autocast would cast it (to cast it another way: `fast_layers`).
- `skip_input_casts`: a layer whose `__call__` leaves its inputs' dtype to its `call`
  (which casts them another way: `fast_layers`).
"""
import keras
import tensorflow as tf


def adam_slots(optimizer, variable):
    """(m, v): the first- and second-moment slots of `variable` in a built Keras Adam.

    Keras' own `Adam.update_step` reads them through the private `_get_variable_index`,
    `_momentums` and `_velocities`; an optimizer that replaces the update (the paper's
    epsilon placement, the fused op) needs the same variables and has no public way.
    """
    index = optimizer._get_variable_index(variable)
    return optimizer._momentums[index], optimizer._velocities[index]


def make_replica_local(counter):
    """Makes a Keras counter variable (optimizer.iterations) replica-local: aggregation
    "none" instead of Keras' "only_first_replica", same value and checkpoint entry.

    Under a tf.distribute strategy, assigning an "only_first_replica" variable in a replica
    context goes through `merge_call`, which an XLA-compiled replica step cannot make
    ("`merge_call` called while defining a new graph or a tf.function"): that is how
    multi-GPU `jit_compile` fails. Every replica adds the same 1, so the replicas' copies
    stay equal. Keras fixes a variable's aggregation when it creates it (Adam creates
    `iterations` in its constructor), so the TensorFlow variable under the Keras one
    (the private `_value`) is replaced by one of the same name and value. Call inside the
    strategy scope; a no-op without a strategy.
    """
    if not tf.distribute.has_strategy() or counter.aggregation == "none":
        return
    old = counter.value
    with tf.init_scope():
        counter._value = tf.Variable(old.read_value(), dtype=old.dtype, trainable=False,
                                     name=old.name.split(":")[0].split("/")[-1],
                                     aggregation=tf.VariableAggregation.NONE)
    counter._aggregation = "none"


def reducible_logs(logs):
    """A train or test step's logs, each scalar as a [1] vector under a multi-worker
    strategy (unchanged otherwise).

    Keras' fit reduces the logs of MultiWorkerMirroredStrategy replicas with
    `strategy.reduce("MEAN", value, axis=0)`, which a scalar does not have (keras 3.15,
    backend/tensorflow/trainer.py reduce_per_replica); a [1] vector reduces to the
    scalar mean over replicas. Whether the strategy is in multi-worker mode is Keras' own
    test, the private `extended._in_multi_worker_mode()`.
    """
    strategy = tf.distribute.get_strategy()
    if (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.extended._in_multi_worker_mode()):
        return {k: tf.reshape(v, [1]) for k, v in logs.items()}
    return logs


class OpensDataOnce:
    """A keras.Model mixin for models built in __init__ and compile (put it before
    keras.Model in the bases): `fit` then opens its data once.

    Keras' fit, under a tf.distribute strategy, builds a model by reading one batch from
    a first iterator of the data and then starts over with a new one (the private
    `_maybe_symbolic_build`, keras/src/backend/tensorflow/trainer.py). Such a model has
    nothing to build, and the extra iterator would cost more than a batch: a dataset that
    reshuffles each iteration gives its second iterator the next epoch's order, so a
    multi-worker run would not train on the data an unbroken single-process run sees.
    Until it is built and compiled, Keras' build runs as usual.
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if not self.built or not self.compiled:
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        return None


def clone_network(model):
    """A new model of `model`'s architecture holding a copy of its weights (all of them:
    BatchNorm statistics too): `keras.models.clone_model` + `set_weights`, for any
    Functional or Sequential model or a serializable subclass. Call inside the strategy
    scope the copy's variables belong to.

    clone_model rebuilds a subclass of Functional (the package's `Generator`) as a plain
    `Functional` model even when the subclass has its own `get_config` (keras 3.15,
    models/cloning.py: it always passes a wrapped `clone_function`), which drops the
    subclass's attributes (`Generator.z_distribution`, read by `latent.of`); a subclass
    with a `get_config` of its own is rebuilt from that config instead.
    """
    copy = keras.models.clone_model(model)
    if type(copy) is not type(model) and type(model).get_config is not type(copy).get_config:
        copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def own_dtype_value(variable):
    """The value of a Keras variable in its own dtype (float32 under mixed precision), also
    inside a layer's call, where reading it gives a copy autocast to the compute dtype.

    Keras casts a float variable read inside a layer's call to the layer's compute dtype
    with TensorFlow's Cast; `fast_layers` casts kernels with a faster op of the same bits,
    and needs the uncast value. An autocast scope of no dtype reads it as it is (keras 3.15,
    backend/common/variables.py: `AutocastScope(None).maybe_cast` returns the value); the
    class has no public name. The read is the variable's own, so gradients reach it.
    """
    from keras.src.backend import AutocastScope
    with AutocastScope(None):
        return tf.convert_to_tensor(variable.value)


def skip_input_casts(layer):
    """Makes Keras' `layer.__call__` pass float inputs of another dtype to `call` as they
    are, instead of casting them to the layer's input dtype with TensorFlow's Cast; the
    layer's `call` must cast them (`fast_layers` does, with a faster op of the same bits).

    Keras 3.15's `Layer.__call__` converts its arguments unless the private attribute
    `_convert_input_args` is False (layers/layer.py, "Convert any array arguments to
    tensors of correct dtype"); there is no public switch.
    """
    layer._convert_input_args = False
