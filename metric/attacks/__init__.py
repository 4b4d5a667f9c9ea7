"""Room `attacks`: L-infinity attacks (FGSM, PGD) on a verifier at its calibrated threshold. It sits below `modules`
because adversarial training trains against the same sign-gradient loop (metric.attacks.linf)."""
