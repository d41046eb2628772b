"""Synthetic masks on unmasked faces (`mask-train synth`): correct, wrongly worn, or none.

Real photos of wrongly worn masks are rare, so masks are drawn procedurally (cv2/numpy, no
templates) on UTKFace chips from core's MTCNN landmarks. Modules: geometry (where the mask
goes), styles (what it looks like), render (lighting, feathering, compositing), source
(the unmasked faces), pipeline (files and manifest), sheet (a contact sheet to look at).
"""
from training.synth.geometry import FaceFrame, MaskGeometry, Placement, choose_placement, place_mask
from training.synth.pipeline import COLUMNS, SynthSummary, pad_context, synthesize
from training.synth.render import Rendered, render, render_mask
from training.synth.sheet import contact_sheet, write_contact_sheet
from training.synth.source import SourceFace, SynthError, read_source
from training.synth.styles import STYLES, MaskStyle, sample_style

__all__ = [
    "COLUMNS", "STYLES", "FaceFrame", "MaskGeometry", "MaskStyle", "Placement", "Rendered", "SourceFace",
    "SynthError", "SynthSummary", "choose_placement", "contact_sheet", "pad_context", "place_mask",
    "read_source", "render", "render_mask", "sample_style", "synthesize", "write_contact_sheet",
]
