"""Loss values and gradients, checked against hand computations and finite differences."""

from __future__ import annotations

import torch
from torch import nn

from nst_tui.engine.losses import content_loss, gram, style_loss, tv_loss


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 5, 3, padding=1))
    return net.double()


def test_gram_is_normalised_by_c_h_w() -> None:
    f = torch.arange(2 * 3 * 4, dtype=torch.float64).reshape(1, 2, 3, 4)
    flat = f.reshape(2, 12)
    assert torch.allclose(gram(f)[0], flat @ flat.T / (2 * 3 * 4))


def test_content_loss_is_mse_per_sample() -> None:
    a = torch.zeros(2, 1, 2, 2)
    b = torch.tensor([1.0, 2.0]).view(2, 1, 1, 1).expand(2, 1, 2, 2)
    assert content_loss(b, a).tolist() == [1.0, 4.0]


def test_tv_is_mean_abs_neighbour_difference() -> None:
    img = torch.tensor([[0.0, 1.0], [1.0, 3.0]]).view(1, 1, 2, 2)
    # vertical pairs: |1-0|, |3-1|; horizontal pairs: |1-0|, |3-1| -> mean 1.5
    assert tv_loss(img).item() == 1.5
    assert tv_loss(torch.ones(1, 3, 5, 7)).item() == 0.0


def test_style_loss_zero_at_target_and_positive_elsewhere() -> None:
    f = torch.rand(1, 4, 6, 6)
    assert style_loss(f, gram(f)).item() == 0.0
    assert style_loss(f * 2, gram(f)).item() > 0


def test_losses_reduce_per_sample_and_batch_independently() -> None:
    x = torch.rand(3, 3, 8, 8)
    target = torch.rand(1, 3, 8, 8)
    batched = content_loss(x, target)
    single = torch.stack([content_loss(x[i : i + 1], target)[0] for i in range(3)])
    assert torch.allclose(batched, single)
    assert torch.allclose(tv_loss(x), torch.cat([tv_loss(x[i : i + 1]) for i in range(3)]))


def test_gradients_match_finite_differences() -> None:
    net = tiny_net()
    target_img = torch.rand(1, 3, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        target_f = net(target_img)
        target_g = gram(target_f)
    x = torch.rand(1, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    checks = {
        "content": lambda im: content_loss(net(im), target_f),
        "style": lambda im: style_loss(net(im), target_g),
        "tv": tv_loss,
    }
    for name, fn in checks.items():
        assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-5), name
