"""Distributed data parallel training of a rewritten model: 2 CPU processes (gloo), the model passed to spawn."""

import copy
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

import seinject
from tests.models import resnet_tiny


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(rank: int, model: nn.Module, port: int, folder: str) -> None:
    """Two SGD steps on this rank's own batch; gradients are averaged across ranks by DDP."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        model = copy.deepcopy(model)  # spawn shares the tensors it passes: give each rank its own
        torch.manual_seed(rank)  # each rank sees other data
        seinject.mark_trainable(model)
        ddp = nn.parallel.DistributedDataParallel(model)
        optimizer = torch.optim.SGD([p for p in ddp.parameters() if p.requires_grad], lr=0.1)
        for _ in range(2):
            x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
            optimizer.zero_grad()
            nn.functional.cross_entropy(ddp(x), y).backward()
            optimizer.step()
        torch.save({name: p.detach().clone() for name, p in seinject.se_parameters(model)}, f"{folder}/{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built in")
def test_ddp_over_two_processes_keeps_the_se_parameters_equal(tmp_path):
    torch.manual_seed(0)
    model = seinject.apply(resnet_tiny(), rule="residual_branch", ratio=4)
    before = {name: p.detach().clone() for name, p in seinject.se_parameters(model)}
    mp.spawn(_train, args=(model, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"{rank}.pt") for rank in (0, 1)]
    assert ranks[0].keys() == before.keys() and len(before) > 0
    for name in before:
        assert torch.equal(ranks[0][name], ranks[1][name]), name  # the ranks agree
    assert any(not torch.equal(ranks[0][name], before[name]) for name in before)  # and they trained
