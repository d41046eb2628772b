"""Training epoch time: crops from the cache against detecting faces every epoch.

(a) cache: `mask-train prepare` once, then every epoch reads the cached context crops.
(b) on the fly (baseline): every epoch decodes each photo, finds its face with core's MTCNN (with
    prepare's pad-and-retry policy) and crops it with core.crop.crop_face.
Both then run the same augmentation and the same training step (same model, batch size and
threads), on the same photos, in the same run. Two figures: the input pipeline alone (what the
cache changes) and a whole epoch with the model (how much of an epoch that is, which depends on
the model and the device). Epochs are interleaved (a, b, a, b, ...) and the fastest of each is
kept, so other load on the machine hits both alike. The one-off cost of prepare is printed too.

    .venv/bin/python bench/train_cache.py [--images 96] [--model mobilenetv3_small_100] [--input-size 128]
"""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from bench.frames import DATA  # noqa: E402
from core.crop import crop_face  # noqa: E402
from core.imageio import load_image  # noqa: E402
from core.mtcnn import MTCNN  # noqa: E402
from training.classifier.augment import AugmentConfig, augment  # noqa: E402
from training.data.cache import Cache  # noqa: E402
from training.config import PrepareConfig  # noqa: E402
from training.classifier.dataset import CropDataset, target_matrix  # noqa: E402
from training.classifier.losses import MultiHeadLoss  # noqa: E402
from training.data.prepare import find_face, prepare  # noqa: E402
from training.classifier.model import build_model  # noqa: E402


class OnTheFly(CropDataset):
    """The baseline: the same views, but the face is found and cropped from the photo each time."""

    def __init__(self, *args, detector: MTCNN, no_face: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.detector = detector
        self.no_face = no_face

    def view(self, index: int) -> np.ndarray:
        image = load_image(self.faces[index].row.path).image
        found = find_face(image, self.detector, self.no_face)
        box = found.box if found is not None else np.array([0, 0, image.shape[1], image.shape[0]], np.float32)
        context = crop_face(image, box, self.geometry.cache_margin, self.geometry.cache_size)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return augment(context, self.geometry, self.augmentation, rng)


def run_epoch(dataset: CropDataset, batch_size: int, epoch: int, model=None, optimizer=None, criterion=None) -> float:
    """Seconds for one epoch over `dataset`: the input pipeline alone, or with a training step."""
    dataset.set_epoch(epoch)
    start = time.perf_counter()
    for images, targets in DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=0):
        if model is not None:
            loss = criterion(model(images), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=96, help="photos: a third each UTKFace, masked and unmasked web photos")
    parser.add_argument("--model", default="mobilenetv3_small_100")
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3, help="epochs timed per variant, interleaved (median)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("bench").setLevel(logging.INFO)
    torch.set_num_threads(args.threads)

    third = args.images // 3
    utk = sorted((DATA / "utkface" / "images").iterdir())[:: 97][:third]
    masked = sorted((DATA / "mask_web" / "with_mask").iterdir())[:: 13][:third]
    bare = sorted((DATA / "mask_web" / "without_mask").iterdir())[:: 13][: args.images - 2 * third]
    workdir = Path(tempfile.mkdtemp(prefix="bench_train_cache_"))
    try:
        table = workdir / "list.csv"
        lines = ["path,mask,gender,age"]
        lines += [f"{p},,{'male' if p.name.split('_')[1] == '0' else 'female'},{p.name.split('_')[0]}" for p in utk]
        lines += [f"{p},wear,," for p in masked] + [f"{p},not_wear,," for p in bare]
        table.write_text("\n".join(lines) + "\n")

        config = PrepareConfig(data=(f"csv={table}",), cache=workdir / "cache", input_size=args.input_size)
        start = time.perf_counter()
        summary = prepare(config, progress=False)
        prepare_s = time.perf_counter() - start

        cache = Cache(config.cache)
        faces = cache.read_faces()
        geometry = cache.read_info().geometry
        labels = target_matrix(faces, 60, False)
        torch.manual_seed(0)
        model = build_model(args.model, False)
        mean, std = model.data_config()["mean"], model.data_config()["std"]
        criterion = MultiHeadLoss(("mask", "gender", "age"), {})
        augmentation = AugmentConfig()
        cached = CropDataset(faces, labels, geometry, mean, std, augmentation)
        fly = OnTheFly(faces, labels, geometry, mean, std, augmentation, detector=MTCNN(), no_face=config.no_face)

        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        model.train()
        train_step = dict(model=model, optimizer=optimizer, criterion=criterion)
        run_epoch(cached, args.batch_size, 0, **train_step)  # warm-up: first-call costs
        times: dict[str, list[float]] = {"data_a": [], "data_b": [], "epoch_a": [], "epoch_b": []}
        for epoch in range(1, args.epochs + 1):
            times["data_a"].append(run_epoch(cached, args.batch_size, epoch))
            times["data_b"].append(run_epoch(fly, args.batch_size, epoch))
            times["epoch_a"].append(run_epoch(cached, args.batch_size, epoch, **train_step))
            times["epoch_b"].append(run_epoch(fly, args.batch_size, epoch, **train_step))
        logging.getLogger("bench").info("all epochs: %s", {k: [round(t, 2) for t in v] for k, v in times.items()})
        best = {k: min(v) for k, v in times.items()}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"{summary.images} photos ({len(utk)} UTKFace, {len(masked)} masked, {len(bare)} unmasked web), "
          f"{len(faces)} with a face; {args.model} at {args.input_size} px, batch {args.batch_size}, "
          f"{args.threads} threads")
    ratio_data = best["data_b"] / best["data_a"]
    ratio_epoch = best["epoch_b"] / best["epoch_a"]
    print(f"{'prepare, once':44s} {prepare_s:7.2f} s")
    print(f"{'input pipeline, (a) from the crop cache':44s} {best['data_a']:7.2f} s/epoch")
    print(f"{'input pipeline, (b) detecting every epoch':44s} {best['data_b']:7.2f} s/epoch   (b)/(a) = {ratio_data:.1f}x")
    print(f"{'whole epoch with the model, (a) cache':44s} {best['epoch_a']:7.2f} s/epoch")
    print(f"{'whole epoch with the model, (b) detecting':44s} {best['epoch_b']:7.2f} s/epoch   (b)/(a) = {ratio_epoch:.2f}x")
    print(f"prepare costs {prepare_s / max(1e-9, best['data_b'] - best['data_a']):.1f} epochs of on-the-fly detection")


if __name__ == "__main__":
    main()
