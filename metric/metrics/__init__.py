"""Room `metrics`: verification rates from pair scores (FAR, FRR, EER, TAR@FAR, ROC), the score grid for billions of
pairs, threshold calibration, evaluation protocols, error breakdowns, and cross-validation."""
