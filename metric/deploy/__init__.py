"""Room `deploy`: what ships a trained model: one-call verification, the gallery (enrollment, 1:1, 1:N), and export
(ONNX, TorchScript, int8, pruning)."""
