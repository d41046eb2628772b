"""mask-train: from labelled photos to the ONNX classifier the app loads (torch side).

Subpackages by job (docs/ARCHITECTURE.md has the map): config (every setting, declared once),
data (datasets, the crop cache, folds, the data report), classifier (model and training), export
(checkpoints to ONNX), detector (MTCNN export, evaluation, fine-tune), synth (masks drawn on faces),
teacher (the CC0 dlib networks' gender / age pseudo-labels and masked twins).
cli.py is the `mask-train` command over them.
"""
