"""De-duplication of a training set by semantic hashing (Radford et al. 2016, section 4.1.1).

    semantic_hash.py  the autoencoder, the code pass over the data and `run` (dedup.json,
                      exclude_list.txt for --exclude_list; the dedup binary)
    match.py          groups from codes: the paper's equal hashes, or verified pairs
    radius.py         the exact fixed-radius pair search that `match` verifies with
"""
