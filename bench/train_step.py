"""Cost of one training step on the CPU by memory layout: contiguous (NCHW, the baseline) against
channels_last (NHWC), same model, same real face crops, same run.

A step is what `mask-train train` does per batch: forward, the three heads' loss, backward, AdamW.
The layouts take turns, round after round, so whatever else the machine does slows them alike.
Prints seconds per step (median over rounds) and the ratio to the baseline. Also checks that the
two layouts give the same loss (they compute the same thing in another order).

    .venv/bin/python bench/train_step.py [--model efficientnet_lite0] [--batch 64] [--rounds 5] [--threads 2]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.classifier_cost import face_boxes  # noqa: E402
from bench.frames import DATA  # noqa: E402
from core.crop import crop_face, to_input  # noqa: E402
from training.classifier.model import build_model  # noqa: E402

LAYOUTS = {"contiguous (baseline)": torch.contiguous_format, "channels_last": torch.channels_last}


def real_batch(size: int, input_size: int, mean, std) -> torch.Tensor:
    crops = np.stack([crop_face(image, box, 0.2, input_size) for image, box in face_boxes(DATA, size)])
    return torch.from_numpy(to_input(crops, mean, std))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=112)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    base = build_model(args.model, False, None, 0.2)
    config = base.data_config()
    images = real_batch(args.batch, args.input_size, config["mean"], config["std"])
    targets = torch.from_numpy(np.random.default_rng(0).integers(0, 2, size=(args.batch, 3)))
    runs = {}
    for name, layout in LAYOUTS.items():
        model = copy.deepcopy(base).to(memory_format=layout)
        runs[name] = (model, torch.optim.AdamW(model.parameters(), lr=1e-3), images.contiguous(memory_format=layout))

    def step(name: str) -> float:
        model, optimizer, batch = runs[name]
        model.train()
        outputs = model(batch)
        loss = sum(torch.nn.functional.cross_entropy(outputs[h], targets[:, i]) for i, h in enumerate(model.head_names))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    first = {}
    for name in LAYOUTS:  # also the warm-up; the same dropout draw for both
        torch.manual_seed(1)
        first[name] = step(name)
    spread = max(first.values()) - min(first.values())
    print(f"first-step loss by layout: {', '.join(f'{k} {v:.5f}' for k, v in first.items())} (difference {spread:.1e})")
    times: dict[str, list[float]] = {name: [] for name in LAYOUTS}
    for _ in range(args.rounds):
        for name in LAYOUTS:
            start = time.perf_counter()
            step(name)
            times[name].append(time.perf_counter() - start)
    baseline = statistics.median(times[next(iter(LAYOUTS))])
    print(f"{args.model}, batch {args.batch} at {args.input_size} px, {args.threads} threads, {args.rounds} rounds:")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:24s} {median:.3f} s a step   x{median / baseline:.2f}")


if __name__ == "__main__":
    main()
