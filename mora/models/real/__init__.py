"""Models of their real size with random weights, built offline from the published configurations.

``mora models make-random PRESET DIR`` writes them; ``bench/real_size.py`` loads them through the same
``from_pretrained`` code a round uses, steps them once and traces their full-size cost on the meta device.
"""
