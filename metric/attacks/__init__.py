"""Room `attacks`: attacks on a verifier at its calibrated threshold (metric.attack): L-infinity FGSM and PGD,
physical patches (adversarial glasses), universal perturbations, input purification. It sits below `modules` because
adversarial training trains against the same sign-gradient loop (linf.py) and patch masks (masks.py)."""
