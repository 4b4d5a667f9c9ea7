"""What ships a trained model: one-call verification, the gallery (enrollment, 1:1, 1:N), the HTTP service (one
router per resource), the liveness gate, and the model-file formats of export (ONNX, TorchScript, int8, pruning)."""
