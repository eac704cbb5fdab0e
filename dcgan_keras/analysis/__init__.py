"""What trained networks learned: the paper's section 6 and GAN Dissection, as `analyze` verbs.

    analyze_lib.py  the verbs (run_<verb>(networks, options))   options.py  their options
    nethook.py      layers by name; G split at a layer, with edits in between
    outputs.py      what every verb shares: generating, sample sheets, real images, PNG/JSON
    guided_backprop.py  what D's units respond to      neighbors.py  the memorisation check
    latent/         what moving in z does (walks, vector arithmetic)
    dissect/        G's units: forgetting an object, GAN Dissection, painting with units
"""
