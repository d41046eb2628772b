"""The one place that builds onnxruntime sessions.

Every session in the process gets the same policy, so the three MTCNN stages and the
classifier never fight over the cores nor hold memory they no longer use, and telemetry is switched off before onnxruntime is
first imported (privacy: the runtime makes no network calls).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

# Forced, not defaulted: an empty ORT_DISABLE_TELEMETRY= in the user's environment would
# otherwise switch telemetry back on (onnxruntime then writes ~/.cache/Microsoft/...).
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

import onnxruntime as ort  # noqa: E402  (must follow the environment variable above)

ort.disable_telemetry_events()

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionPolicy:
    """How many threads each session may use (spinning threads steal cores from the others), and
    how it holds memory.

    Both of onnxruntime's memory defaults are off: its CPU arena keeps, for the session's life,
    what the largest run needed, and its memory pattern plans (and the arena keeps) a block per
    input shape. The classifier sees a new shape with each number of faces and MTCNN with each
    photo size, so memory only grew: 2.7 GB after 24 crowded photos against 0.8 GB loaded, and a
    live window gained ~70 MiB whenever a frame held a face more than any before. Without them,
    with the classifier run 4 faces at a time (core.config.CLASSIFIER_BATCH), memory returns to
    its loaded level after each photo at about the same speed (bench/session_memory.py).
    """

    intra_op_threads: int = max(1, min(2, os.cpu_count() or 1))
    inter_op_threads: int = 1
    allow_spinning: bool = False
    memory_arena: bool = False
    memory_pattern: bool = False


_policy = SessionPolicy()


def set_session_policy(policy: SessionPolicy) -> None:
    """Change the policy for sessions created from now on (the whole process shares one)."""
    global _policy
    _policy = policy


def session_policy() -> SessionPolicy:
    return _policy


def session_options() -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = _policy.intra_op_threads
    opts.inter_op_num_threads = _policy.inter_op_threads
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_cpu_mem_arena = _policy.memory_arena
    opts.enable_mem_pattern = _policy.memory_pattern
    spin = "1" if _policy.allow_spinning else "0"
    opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
    opts.add_session_config_entry("session.inter_op.allow_spinning", spin)
    opts.log_severity_level = 3
    return opts


def create_session(model: str | Path | bytes) -> ort.InferenceSession:
    """An InferenceSession on the CPU with the process-wide session policy.

    `model` is a path or the serialized model bytes (reading the bytes first lets a caller
    validate a file before it replaces a working model).
    """
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, sess_options=session_options(), providers=["CPUExecutionProvider"])
