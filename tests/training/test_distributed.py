"""Two-process DDP smoke test on CPU (gloo): the same code path torchrun uses."""

from __future__ import annotations

import os
import socket
import sys

import pytest
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(__file__))
from test_training import TINY, tone  # noqa: E402

from audio_fixtures import write  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, data: str, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    import torch
    import torch.distributed as dist

    from audiosiam.data import DataSource
    from audiosiam.training import TrainConfig, train

    torch.set_num_threads(1)
    seen = []
    import audiosiam.training.loop as loop

    real_gather = loop.gather

    def spy(embeddings, labels, world_size):  # record the batch size the loss really sees
        gathered = real_gather(embeddings, labels, world_size)
        seen.append((embeddings.shape[0], gathered[0].shape[0]))
        return gathered

    loop.gather = spy
    config = TrainConfig(out=out, **{**TINY, "epochs": 1, "val_classes": 2})
    train(config, [DataSource(data, "tones")], progress=False, log=lambda *a: None)
    assert all(total == world * local for local, total in seen), seen
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo_training(tmp_path):
    for c in range(6):
        for n in range(6):
            write(tmp_path / "data" / f"class{c}" / f"{n}.wav", tone(200 * 1.6**c, 0.6, seed=10 * c + n))
    out = tmp_path / "ddp.pt"
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "data"), str(out)), nprocs=2, join=True)
    assert out.is_file() and (tmp_path / "ddp.run" / "metrics.json").is_file()
