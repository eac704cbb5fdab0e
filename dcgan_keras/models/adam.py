"""The paper's Adam: epsilon where its code puts it, one fused op per variable.

Radford et al. 2016 (section 4) train with Adam, lr 2e-4 and beta1 0.5; their code uses
epsilon 1e-8 on the bias-corrected sqrt(v). `Adam` is `keras.optimizers.Adam` with that
choice of placement and with TensorFlow's ResourceApplyAdam kernel as its update where it
applies: the same maths as Keras' ~10 elementwise ops and assigns, in one op.
"""
import keras
import tensorflow as tf

from dcgan_keras.models import keras_compat, native_ops

ADAM_EPSILON = 1e-8  # the paper's code (and PyTorch); Keras' default is 1e-7
# Where Adam adds epsilon: "v_hat" = sqrt(v / (1 - b2^t)) + eps (the paper's own Theano code,
# Newmu/dcgan_code's lib/updates.py; Kingma & Ba's Algorithm 1; PyTorch's torch.optim.Adam)
# or "v" = sqrt(v) + eps before the bias correction (Keras, TensorFlow, and Torch7's
# optim.adam used by the dcgan.torch port).
ADAM_EPSILON_ON = ("v", "v_hat")


def _handle(variable):
    """The resource handle of a Keras or TensorFlow variable (what raw ops take)."""
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle


@keras.saving.register_keras_serializable(package="dcgan_keras")
class Adam(keras.optimizers.Adam):
    """keras.optimizers.Adam with a choice of where epsilon goes (`epsilon_on`), updating
    each variable with one fused op (`fused`).

    "v" (the default here, as in Keras) is Keras' update,
    var -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps), as in Torch7's optim.adam.
    "v_hat" is the paper's Theano code's and PyTorch's,
    var -= lr / (1 - b1^t) m / (sqrt(v / (1 - b2^t)) + eps): the same update with
    eps * sqrt(1 - b2^t) in place of eps, so a smaller epsilon early in training (at step 1
    ~32x smaller with beta2 0.999), where gradients near zero get Adam's full-size step.

    With `fused` (the default), a float32 variable updated outside a tf.distribute
    strategy takes one ResourceApplyAdam op (m += (g - m)(1 - b1), v += (g^2 - v)(1 - b2),
    var -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps), t = iterations + 1, with
    `effective_epsilon` as eps) instead of Keras' elementwise ops: the same slots and
    iteration counter, equal to float32 rounding. Clipping, weight decay, EMA and loss
    scaling stay Keras'. Where the gradient is the float32 cast of bfloat16 gradients
    (a kernel `fast_layers` casts to bfloat16 for its products; D's are used twice a D
    step, their casts summed), the native ops' DcganAdam reads those bfloat16 gradients
    instead of the float32 copies (`native_ops.adam`; bit for bit the same update on the
    AMX Xeon). Under a strategy, for other dtypes and with amsgrad, Keras' own
    update runs (with `epsilon_on`). The train binary and `DCGAN.compile` turn it off
    for float16 (under a LossScaleOptimizer): float16 runs, the GPU default, keep the
    update they have always had, and the fused op is untested on GPUs here.

    Args:
        epsilon_on: "v" or "v_hat" (see above).
        fused: use the fused op where it applies.
        *args, **kwargs: those of keras.optimizers.Adam.
    """

    def __init__(self, *args, epsilon_on="v", fused=True, **kwargs):
        if epsilon_on not in ADAM_EPSILON_ON:
            raise ValueError(f"epsilon_on must be one of {ADAM_EPSILON_ON}, got "
                             f"{epsilon_on!r}")
        super().__init__(*args, **kwargs)
        if self.amsgrad and epsilon_on != "v":
            raise ValueError("amsgrad is only supported with epsilon_on='v'")
        self.epsilon_on = epsilon_on
        self.fused = bool(fused)

    def effective_epsilon(self, beta_2_power):
        """The epsilon of Keras' "v" form that gives this optimizer's update."""
        if self.epsilon_on == "v":
            return self.epsilon
        return self.epsilon * keras.ops.sqrt(1 - beta_2_power)

    def uses_fused_update(self, variable):
        """Whether `variable` is updated by the fused op (decided when the step traces)."""
        return (self.fused and not self.amsgrad and keras.backend.backend() == "tensorflow"
                and not tf.distribute.has_strategy() and variable.dtype == tf.float32)

    def update_step(self, gradient, variable, learning_rate):
        if self.uses_fused_update(variable):
            return self._fused_update_step(gradient, variable, learning_rate)
        if self.epsilon_on == "v":
            return super().update_step(gradient, variable, learning_rate)
        ops = keras.ops
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        step = ops.cast(self.iterations + 1, variable.dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, variable.dtype), step)
        beta_2_power = ops.power(ops.cast(self.beta_2, variable.dtype), step)
        m, v = keras_compat.adam_slots(self, variable)
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v),
                                        1 - self.beta_2))
        alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        self.assign_sub(variable, ops.divide(ops.multiply(m, alpha), ops.add(
            ops.sqrt(v), self.effective_epsilon(beta_2_power))))

    def _fused_update_step(self, gradient, variable, learning_rate):
        m, v = keras_compat.adam_slots(self, variable)
        local_step = tf.cast(self.iterations + 1, tf.float32)
        beta_1 = tf.cast(self.beta_1, tf.float32)
        beta_2 = tf.cast(self.beta_2, tf.float32)
        beta_2_power = tf.pow(beta_2, local_step)
        scalars = dict(beta1_power=tf.pow(beta_1, local_step), beta2_power=beta_2_power,
                       lr=tf.cast(learning_rate, tf.float32), beta1=beta_1, beta2=beta_2,
                       epsilon=tf.cast(self.effective_epsilon(beta_2_power), tf.float32))
        parts = native_ops.bfloat16_parts(gradient)
        if parts:  # a bfloat16 product's gradient(s) cast up: read as they are
            new = native_ops.adam(*(tf.convert_to_tensor(x.value if isinstance(
                x, keras.Variable) else x) for x in (variable, m, v)), parts, **scalars)
            for target, value in zip((variable, m, v), new):
                target.assign(value)  # adopts the op's buffer
            return None
        return tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(m), v=_handle(v), grad=tf.cast(gradient, tf.float32),
            **scalars)

    def get_config(self):
        return {**super().get_config(), "epsilon_on": self.epsilon_on, "fused": self.fused}


def default_optimizer(learning_rate=2e-4, beta1=0.5, epsilon_on="v_hat", fused=True):
    """The paper's Adam: lr 2e-4, beta1 0.5 (section 4), epsilon 1e-8 on the bias-corrected
    sqrt(v) (its code)."""
    return Adam(learning_rate=learning_rate, beta_1=beta1, epsilon=ADAM_EPSILON,
                epsilon_on=epsilon_on, fused=fused)
