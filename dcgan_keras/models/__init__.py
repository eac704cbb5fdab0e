"""DCGAN networks, the paper's Adam and the adversarial keras.Model."""
from dcgan_keras.models.adam import Adam, default_optimizer
from dcgan_keras.models.dcgan import DCGAN, build_dcgan
from dcgan_keras.models.discriminator import Discriminator
from dcgan_keras.models.generator import Generator

__all__ = ["Adam", "DCGAN", "Discriminator", "Generator", "build_dcgan", "default_optimizer"]
