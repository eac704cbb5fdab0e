"""The train binary's --trainer and --egan_* flags (Evolutionary GAN, Wang et al. 2018).

Imported by binaries/train.py; defaults come from config.TrainConfig.
"""
from absl import flags

from dcgan_keras import config as config_lib
from dcgan_keras.evolution import mutations

_D = config_lib.TrainConfig()
flags.DEFINE_enum("trainer", _D.trainer, config_lib.TRAINERS,
                  "dcgan: one G, one D (the paper). egan: Evolutionary GAN, a population of "
                  "generators evolved against one D (Wang et al. 2018; README).")
flags.DEFINE_string("egan_mutations", _D.egan_mutations,
                    "Comma-separated E-GAN mutations, each makes one child per parent: "
                    f"{', '.join(mutations.MUTATIONS)}.")
flags.DEFINE_integer("egan_parents", _D.egan_parents,
                     "mu: the fittest children kept each generation (the paper: 1).")
flags.DEFINE_integer("egan_d_steps", _D.egan_d_steps,
                     "n_D: D updates per generation, each on its own batch_size / "
                     "egan_d_steps real images, so --batch_size must be a multiple of "
                     "egan_d_steps x egan_parents. 3: both author codebases' image runs "
                     "(Theano kD = 3, PyTorch --D_iters 3), with 32 real images per D step, "
                     "i.e. --batch_size=96 (the paper's Algorithm 1 lists 2).")
flags.DEFINE_float("egan_gamma", _D.egan_gamma,
                   "Weight of the diversity fitness in F = F_q + gamma F_d (the authors' "
                   "CIFAR-10 code: 0.004 on log ||grad||).")
flags.DEFINE_enum("egan_fd_sign", _D.egan_fd_sign, sorted(mutations.FD_SIGNS),
                  "F_d = -log ||grad_D L_D|| (minus: the paper, its Theano code and the "
                  "latest PyTorch code) or +log ||grad_D L_D|| (plus: only a superseded "
                  "2019 PyTorch release; for comparison).")
flags.DEFINE_integer("egan_fitness_batch", _D.egan_fitness_batch,
                     "Generated samples per child evaluation (the authors' code: 256).")
