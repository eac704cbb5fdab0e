"""Which batch sizes an E-GAN generation can split, and why (pure Python: config.py and
the model share this one rule).

A generation takes one global batch of B real images and splits it into n_D equal D steps
(Algorithm 1), each on B / n_D real images and as many fakes, the fakes drawn equally from
the mu parents; under a tf.distribute strategy every replica splits its own share alike.
So B must be a multiple of n_D x mu x replicas.

Both author codebases give each D step its own batch of real images: the Theano code
reads batchSize x kD images per generation and feeds them to the kD D steps batchSize at
a time (cifar10/train_cifar10.py, bedroom/, faces/: batchSize = 32, kD = 3), and the
PyTorch code reads batch_size x (D_iters + 1) + eval_size images and gives D step i the
i-th slice of batch_size (models/egan_model.py; scripts/train_egan_cifar10.sh:
--batch_size 32 --D_iters 3). Their image runs thus see 32 real images per D step.
"""

AUTHORS_D_BATCH = 32  # real images per D step in the authors' image runs (see above)


def check_batch_size(batch_size, d_steps, parents, replicas=1):
    """Raises ValueError, naming batch sizes that work, unless a global batch of
    `batch_size` splits into `d_steps` D steps whose fakes come equally from `parents`
    parents, on each of `replicas` replicas."""
    unit = d_steps * parents * replicas
    if batch_size % unit == 0:
        return
    names = "egan_d_steps x egan_parents" + (" x replicas" if replicas > 1 else "")
    below = batch_size // unit * unit
    nearby = f"{below} or {below + unit}" if below else f"{unit}"
    # The smallest working batch that gives every D step at least batch_size real images.
    per_dcgan_step = -(-batch_size * d_steps // unit) * unit
    authors = AUTHORS_D_BATCH * d_steps
    hint = (f"; the authors' image runs used {AUTHORS_D_BATCH} per D step: "
            f"--batch_size={authors}" if authors % unit == 0 else "")
    raise ValueError(
        f"with --trainer=egan, --batch_size={batch_size} is not a multiple of {names} = "
        f"{unit}: a generation splits its batch into {d_steps} D steps of batch_size / "
        f"{d_steps} real images each, and each D step's fakes come equally from the "
        f"{parents} parent(s)"
        + (f" on each of {replicas} replicas" if replicas > 1 else "")
        + f". Use {nearby}, or {per_dcgan_step} to give each D step "
        f"{per_dcgan_step // d_steps} real images (a DCGAN step at --batch_size="
        f"{batch_size} sees {batch_size}){hint}.")
