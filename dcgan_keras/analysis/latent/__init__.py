"""What moving in G's latent space does (Radford et al. 2016, sections 6.1 and 6.3.2).

    interpolation.py  walks between random z: smooth or sharp transitions (`analyze walk`)
    arithmetic.py     vector arithmetic on averaged z of exemplars (`analyze arithmetic`)
"""
