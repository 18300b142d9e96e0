"""The loss terms beyond the study's: squared TV, the Wasserstein-2 style distance and
the histogram-matching term, checked against closed forms."""

from __future__ import annotations

import torch

from nst_tui.engine.losses import (
    W2Target,
    histogram_loss,
    moments,
    sorted_values,
    tv_loss,
    w2_loss,
)


def test_squared_tv_is_mean_squared_neighbour_difference() -> None:
    image = torch.tensor([[0.0, 0.5], [1.0, 1.0]]).expand(1, 3, 2, 2)
    # Vertical pairs: 1.0, 0.5; horizontal: 0.5, 0.0 (per channel).
    assert torch.allclose(tv_loss(image, squared=True), torch.tensor([(1 + 0.25 + 0.25) / 4]))
    assert torch.allclose(tv_loss(image), torch.tensor([(1 + 0.5 + 0.5) / 4]))


def uncorrelated(means: list[float], stds: list[float]) -> torch.Tensor:
    """(1, C, 2, 2) features whose channels have these means and standard deviations
    and an exactly diagonal covariance (orthogonal +-1 patterns)."""
    patterns = torch.tensor([[1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0]])
    rows = [m + s * patterns[k] for k, (m, s) in enumerate(zip(means, stds, strict=True))]
    return torch.stack(rows).reshape(1, len(means), 2, 2)


def test_w2_matches_the_closed_form_for_diagonal_gaussians() -> None:
    style = uncorrelated([1.0, -2.0], [3.0, 0.5])
    canvas = uncorrelated([0.0, 1.0], [1.0, 2.0])
    target = W2Target.of(style)
    # Diagonal Gaussians: |m - m'|^2 + sum (s - s')^2.
    expected = (1 + 9) + ((3 - 1) ** 2 + (0.5 - 2) ** 2)
    got = w2_loss(canvas, target.mean, target.cov_sqrt, target.cov_trace)
    assert abs(float(got[0]) - expected) < 1e-3 * expected  # the eigenvalue floor's cost


def test_w2_is_zero_at_the_style_and_its_gradient_points_back() -> None:
    gen = torch.Generator().manual_seed(0)
    style = torch.relu(torch.randn(1, 16, 6, 6, generator=gen))
    target = W2Target.of(style)
    at_style = w2_loss(style, target.mean, target.cov_sqrt, target.cov_trace)
    assert abs(float(at_style[0])) < 3e-3 * target.energy()
    canvas = (style + 0.3 * torch.randn(1, 16, 6, 6, generator=gen)).requires_grad_()
    loss = w2_loss(canvas, target.mean, target.cov_sqrt, target.cov_trace)
    loss.sum().backward()
    assert canvas.grad is not None and torch.isfinite(canvas.grad).all()
    with torch.no_grad():  # a small step down the gradient lowers the distance
        stepped = canvas - 0.01 * canvas.grad
        after = w2_loss(stepped, target.mean, target.cov_sqrt, target.cov_trace)
    assert float(after[0]) < float(loss.detach()[0])


def test_w2_of_a_batch_is_each_canvas_alone() -> None:
    gen = torch.Generator().manual_seed(1)
    target = W2Target.of(torch.randn(1, 8, 5, 5, generator=gen))
    batch = torch.randn(3, 8, 5, 5, generator=gen)
    together = w2_loss(batch, target.mean, target.cov_sqrt, target.cov_trace)
    alone = [w2_loss(b[None], target.mean, target.cov_sqrt, target.cov_trace) for b in batch]
    assert torch.allclose(together, torch.cat(alone), rtol=1e-4)


def test_moments_are_mean_and_covariance_over_positions() -> None:
    features = uncorrelated([2.0, 0.0], [1.0, 3.0])
    mean, cov = moments(features)
    assert torch.allclose(mean, torch.tensor([[2.0, 0.0]]))
    assert torch.allclose(cov, torch.diag(torch.tensor([1.0, 9.0]))[None])


def test_histogram_term_moves_each_value_to_the_style_value_of_its_rank() -> None:
    style = torch.tensor([10.0, 30.0, 20.0, 40.0]).reshape(1, 1, 2, 2)
    target = sorted_values(style, 4)
    assert torch.equal(target, torch.tensor([[[10.0, 20.0, 30.0, 40.0]]]))
    canvas = torch.tensor([4.0, 1.0, 3.0, 2.0]).reshape(1, 1, 2, 2).requires_grad_()
    loss = histogram_loss(canvas, target)
    # Ranks: 4 -> 40, 1 -> 10, 3 -> 30, 2 -> 20.
    expected = ((4 - 40) ** 2 + (1 - 10) ** 2 + (3 - 30) ** 2 + (2 - 20) ** 2) / 4
    assert abs(float(loss[0].detach()) - expected) < 1e-3
    loss.sum().backward()  # the remapping is a constant: the gradient is 2 (f - matched) / N
    matched = torch.tensor([40.0, 10.0, 30.0, 20.0]).reshape(1, 1, 2, 2)
    assert torch.allclose(canvas.grad, 2 * (canvas.detach() - matched) / 4)


def test_histogram_term_is_zero_for_any_rearrangement_of_the_style() -> None:
    gen = torch.Generator().manual_seed(2)
    style = torch.randn(1, 4, 8, 8, generator=gen)
    shuffled = style.reshape(1, 4, 64)[..., torch.randperm(64, generator=gen)].reshape(style.shape)
    assert float(histogram_loss(shuffled, sorted_values(style, 64))[0]) < 1e-10


def test_sorted_values_resample_a_larger_style_as_quantiles() -> None:
    style = torch.arange(9.0).reshape(1, 1, 3, 3)  # 0..8
    assert torch.allclose(sorted_values(style, 3), torch.tensor([[[0.0, 4.0, 8.0]]]))
    assert torch.allclose(sorted_values(style, 5), torch.tensor([[[0.0, 2.0, 4.0, 6.0, 8.0]]]))
