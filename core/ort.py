"""The one place that builds onnxruntime sessions.

Every session in the process gets the same thread policy, so the three MTCNN stages and the
classifier never fight over the cores, and telemetry is switched off before onnxruntime is
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
class ThreadPolicy:
    """How many threads each session may use; spinning threads steal cores from the others."""

    intra_op_threads: int = max(1, min(2, os.cpu_count() or 1))
    inter_op_threads: int = 1
    allow_spinning: bool = False


_policy = ThreadPolicy()


def set_thread_policy(policy: ThreadPolicy) -> None:
    """Change the policy for sessions created from now on (the whole process shares one)."""
    global _policy
    _policy = policy


def thread_policy() -> ThreadPolicy:
    return _policy


def session_options() -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = _policy.intra_op_threads
    opts.inter_op_num_threads = _policy.inter_op_threads
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    spin = "1" if _policy.allow_spinning else "0"
    opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
    opts.add_session_config_entry("session.inter_op.allow_spinning", spin)
    opts.log_severity_level = 3
    return opts


def create_session(model: str | Path | bytes) -> ort.InferenceSession:
    """An InferenceSession on the CPU with the process-wide thread policy.

    `model` is a path or the serialized model bytes (reading the bytes first lets a caller
    validate a file before it replaces a working model).
    """
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, sess_options=session_options(), providers=["CPUExecutionProvider"])
