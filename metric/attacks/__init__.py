"""Attacks on a verifier at its calibrated threshold, as components (metric.pipelines.attack runs them): L-infinity
FGSM and PGD, physical patches (adversarial glasses), universal perturbations, input purification. Adversarial
training (metric.losses.adversarial) uses the same sign-gradient loop (linf.py) and patch masks (masks.py)."""
