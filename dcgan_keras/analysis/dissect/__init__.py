"""G's hidden units, read and edited between the halves of `nethook.SplitGenerator`.

    forget.py      the DCGAN paper's "forgetting to draw" an object (section 6.3.1)
    dissection.py  GAN Dissection (Bau et al. 2018): units <-> concepts, ablation, insertion
    segmenters.py  the concept maps dissection compares units with (pluggable)
    paint/         painting with dissected units (GANPaint): a local web page
"""
