"""mask-train: from labelled photos to the ONNX classifier the app loads (torch side)."""
