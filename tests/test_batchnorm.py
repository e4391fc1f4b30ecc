"""The book's from-scratch batch normalization behaves as nn.BatchNorm does, in training and evaluation."""

import torch
from torch import nn

from explorer.models.lenet import BatchNorm


def test_training_mode_normalizes_with_batch_statistics():
    torch.manual_seed(0)
    X = torch.randn(16, 3, 5, 5) * 4 + 7
    ours, ref = BatchNorm(3, num_dims=4), nn.BatchNorm2d(3)
    Y = ours(X)
    assert torch.allclose(Y, ref(X), atol=1e-5)
    assert torch.allclose(Y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(Y.var(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3)


def test_moving_averages_use_momentum_point_nine():
    X = torch.full((4, 2), 10.0)
    X[:, 1] = torch.tensor([0.0, 2.0, 4.0, 6.0])
    bn = BatchNorm(2, num_dims=2)
    bn(X)
    assert torch.allclose(bn.moving_mean, torch.tensor([[1.0, 0.3]]))      # 0.9 * 0 + 0.1 * mean
    assert torch.allclose(bn.moving_var, torch.tensor([[0.9, 0.9 + 0.5]]))  # 0.9 * 1 + 0.1 * var (5)


def test_evaluation_mode_uses_moving_averages_and_leaves_them_alone():
    bn = BatchNorm(2, num_dims=2)
    bn.moving_mean.fill_(1.0)
    bn.moving_var.fill_(4.0)
    bn.eval()
    X = torch.tensor([[3.0, 5.0]])
    Y = bn(X)
    assert torch.allclose(Y, (X - 1.0) / torch.sqrt(torch.tensor(4.0 + 1e-5)))
    assert torch.equal(bn.moving_mean, torch.ones(1, 2))


def test_moving_statistics_are_saved_with_the_weights():
    bn = BatchNorm(6, num_dims=4)
    assert {"gamma", "beta", "moving_mean", "moving_var"} <= set(bn.state_dict())
    assert sum(p.numel() for p in bn.parameters()) == 12
