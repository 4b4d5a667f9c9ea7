"""Pure functions, arrays in and numbers out: verification rates from pair scores (FAR, FRR, EER, TAR@FAR, ROC),
threshold calibration, liveness rates, error breakdowns, cross-validation statistics, pseudo-label quality."""
