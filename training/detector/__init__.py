"""The MTCNN face detector: export (stock weights to ONNX), reference (the pinned stock export),
scenes (face_mask_853 and its held-out split), evaluate and synth_check (scores), crops and
finetune (the fine-tune)."""
