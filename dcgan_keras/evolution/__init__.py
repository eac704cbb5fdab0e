"""Evolutionary GAN (Wang et al. 2018): a population of generators evolved against one
discriminator, trained by the same `fit` loop and callbacks as the DCGAN."""
from dcgan_keras.evolution.egan import EGAN, build_egan
from dcgan_keras.evolution.mutations import DEFAULT_MUTATIONS, FD_SIGNS, MUTATIONS

__all__ = ["EGAN", "build_egan", "DEFAULT_MUTATIONS", "FD_SIGNS", "MUTATIONS"]
