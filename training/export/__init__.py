"""A run's best checkpoint(s) to the ONNX classifier core loads: onnx (export and parity check),
metadata (what the file says about itself), single (one run), ensemble (several runs, TTA)."""
