"""Data-parallel training: two CPU processes on gloo under torchrun train one run on a tiny
competition-layout set; rank 0 alone writes it, and validation covers the whole fold."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")

import torch  # noqa: E402

from training.cli import main  # noqa: E402
from training.config import PrepareConfig, SplitConfig  # noqa: E402
from training.classifier.distributed import ShardedWeightedSampler, World, all_sum, gather_rows, shard, train_sampler  # noqa: E402
from training.data.prepare import prepare  # noqa: E402
from training.data.split import split  # noqa: E402
from tests.train_helpers import layout_competition  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def test_weighted_shards_split_one_draw_between_ranks():
    weights = [1.0, 5.0, 1.0, 3.0, 1.0, 2.0, 1.0]

    def draw(rank: int) -> list[int]:
        return list(ShardedWeightedSampler(weights, World(rank, rank, 3), torch.Generator().manual_seed(7)))

    shards = [draw(r) for r in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]  # 7 photos rounded up to a multiple of 3
    whole = torch.multinomial(torch.tensor(weights, dtype=torch.float64), 9, replacement=True,
                              generator=torch.Generator().manual_seed(7)).tolist()
    assert [whole[i] for i in range(9) if i % 3 == 0] == shards[0]
    assert sorted(i for shard in shards for i in shard) == sorted(whole)


def test_random_shards_are_disjoint_and_change_with_the_epoch():
    def shards(epoch: int) -> list[list[int]]:
        return [list(train_sampler(World(r, r, 2), 9, None, 3, epoch, torch.Generator())) for r in range(2)]

    first = shards(1)
    assert len(first[0]) == len(first[1]) == 5
    assert set(first[0]) | set(first[1]) == set(range(9))  # every photo, one padded repeat
    assert first != shards(2)


def _gather_worker(rank: int, size: int, rows: int, folder: str) -> None:
    """One of `size` gloo processes: each holds its shard's row numbers; gathered, they must come
    back as 0..rows-1 in order, and the sums over the ranks must be the same on every rank."""
    import numpy as np
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=size)
    try:
        world = World(rank, rank, size, "gloo")
        mine = np.array(shard(world, rows), dtype=np.int64)
        gathered = gather_rows(world, {"row": np.stack([mine, -mine], axis=1)}, rows)["row"]
        sums = all_sum(world, [rank + 1.0, float(len(mine))], torch.device("cpu"))
        Path(folder, f"rank{rank}.json").write_text(json.dumps({"rows": gathered.tolist(), "sums": sums}))
    finally:
        dist.destroy_process_group()


def test_gathered_validation_rows_come_back_in_order(tmp_path):
    torch.multiprocessing.spawn(_gather_worker, args=(3, 10, str(tmp_path)), nprocs=3)
    for rank in range(3):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got["rows"] == [[i, -i] for i in range(10)]
        assert got["sums"] == [6.0, 10.0]


def test_torchrun_two_gloo_processes_write_one_run(tmp_path, shared_data):
    layout_competition(tmp_path / "competition", shared_data, people=6)
    cache = tmp_path / "cache"
    prepare(PrepareConfig(data=(f"competition={tmp_path / 'competition'}",), cache=cache, input_size=64), progress=False)
    split(SplitConfig(cache=cache, num_folds=2))
    runs = tmp_path / "runs"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "training.cli", "train", "--cache", str(cache), "--run-dir", str(runs / "ddp"),
        "--model", "mobilenetv3_small_050", "--epochs", "2", "--batch-size", "8", "--workers", "0",
        "--threads", "1", "--device", "cpu", "--sampler", "weighted", "--patience", "5",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    assert [p.name for p in runs.iterdir()] == ["ddp"]
    run = runs / "ddp"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    with open(run / "metrics.csv", newline="") as handle:
        metrics = list(csv.DictReader(handle))
    assert [r["epoch"] for r in metrics] == ["1", "2"]
    log = (run / "train.log").read_text()
    assert log.count("2 processes (gloo): each trains on 8 photos an epoch") == 1
    assert log.count("epoch 1: train loss") == 1  # rank 1 logs nothing at INFO

    # The score each epoch is over the whole validation fold (the ranks' shards gathered in
    # order): evaluating the best checkpoint on the fold in one process gives the same number.
    assert main(["evaluate", "--run-dir", str(run), "--out", str(tmp_path / "eval")]) == 0
    scores = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    best = max(metrics, key=lambda r: float(r["score"]))
    assert float(best["score"]) == pytest.approx(scores["score"], abs=1e-5)
