"""dcgan_keras: DCGAN (Radford et al. 2016) and the research built on it, in Keras 3 / TensorFlow."""

__version__ = "0.1.0"
