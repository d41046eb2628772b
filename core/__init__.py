"""Mask Checker runtime engine: numpy, OpenCV and onnxruntime only (no Qt, no torch)."""
