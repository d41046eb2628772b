"""Float16 storage of an ONNX graph's weights, float32 arithmetic.

Why: an ensemble of five EfficientNet-Lite0 trunks is ~69 MB in float32, and the file ships inside
the app and the repository. Each large float32 initializer is stored as float16 and followed by a
Cast back to float32 under its old name, so every operator still sees float32 and onnxruntime folds
the casts into constants when the session is created: same speed, same memory once loaded, half the
file. The price is float16 rounding of the weights (about 3 significant digits), which export's
parity check measures against the float32 torch model.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: Initializers smaller than this stay float32: biases and scales cost nothing and are the most sensitive.
MIN_ELEMENTS = 1024
#: Beyond float16's largest finite value an initializer stays float32.
FLOAT16_MAX = float(np.finfo(np.float16).max)
#: Suffix of the stored float16 tensor's name; the Cast node writes the original name.
SUFFIX = "__float16"


def store_half(model: onnx.ModelProto, min_elements: int = MIN_ELEMENTS) -> int:
    """Convert `model`'s large float32 initializers in place; returns how many were converted."""
    graph = model.graph
    graph_inputs = {i.name for i in graph.input}
    casts = []
    for tensor in graph.initializer:
        if tensor.data_type != TensorProto.FLOAT or tensor.name in graph_inputs:
            continue
        values = numpy_helper.to_array(tensor)
        if values.size < min_elements or not np.isfinite(values).all() or np.abs(values).max() > FLOAT16_MAX:
            continue
        name = tensor.name
        stored = name + SUFFIX
        tensor.CopyFrom(numpy_helper.from_array(values.astype(np.float16), stored))  # tensor now holds the float16 copy
        casts.append(helper.make_node("Cast", [stored], [name], to=TensorProto.FLOAT, name=f"cast_{name}"))
    # Graph nodes must be in topological order: the casts go first.
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return len(casts)
