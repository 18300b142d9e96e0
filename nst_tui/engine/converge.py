"""Stop when the picture stops improving: the `stop_change` rule.

Every `stop_window` iterations the total loss of that window's iterations is averaged;
the gain is how much lower that mean is than the previous window's, as a fraction of
the previous one (0.01: 1% lower). Once a window's gain is below `stop_change`, the
cell's run ends there, finished; `iterations` stays the cap.

Why the loss and not the pixels: at a fixed learning rate Adam never settles, and the
canvas keeps wandering. Measured on the `default` preset at 128 px (benchmarks/README.md,
"Stop when the picture stops improving"), the mean canvas of one 50-iteration window
still differed from the last one's by 3 to 25 levels of 255 (mean over pixels) through
all 2500 iterations, while the judge's distances had stopped improving after a few
hundred: the strokes move, the picture does not get better. The loss is what the
optimizer improves; a window's mean takes out its step-to-step bounce (several percent
at a fixed lr).

The window's sum is kept on the device (one add per step) and its gain computed when the
window closes and read back through an Outbox (engine/outbox.py), so the loop never waits
for it. On a GPU the decision lands a few steps after its window: those steps are kept
(the run stops where it is then).
"""

from __future__ import annotations

import torch


class Gains:
    """One cell's windows of its total loss: fold each step's in, close a window every
    `window` steps (its gain over the previous window's mean, or None for the first)."""

    def __init__(self, window: int, device: torch.device) -> None:
        self.window = window
        self.sum = torch.zeros((), device=device)
        self.previous: torch.Tensor | None = None

    def add(self, total: torch.Tensor) -> None:
        """Fold this step's total loss in (a device scalar; no wait)."""
        with torch.no_grad():
            self.sum.add_(total.detach().float())

    def close(self) -> torch.Tensor | None:
        """End the window: its mean becomes the reference; the gain over the last window's
        mean ((last - this) / last, a 1-element device tensor), None for the first."""
        with torch.no_grad():
            mean = self.sum / self.window
            gain = None
            if self.previous is not None:
                gain = ((self.previous - mean) / self.previous.abs().clamp_min(1e-30)).view(1)
            self.previous = mean
            self.sum = torch.zeros_like(self.sum)
        return gain


def converged_reason(
    stopped: int, cap: int, end: int, window: int, gain: float, limit: float
) -> str:
    """run.json's reason for a run the rule ended at iteration `stopped`, on the window
    that ended at `end` (the same on a CPU; a few steps earlier on a GPU)."""
    a, b = end - 2 * window + 1, end - window
    how = f"{gain:.2%} below" if gain >= 0 else f"{-gain:.2%} above"
    return (
        f"converged at iteration {stopped} of {cap}: the mean loss of iterations "
        f"{b + 1}-{end} was {how} that of iterations {a}-{b}, less than "
        f"stop_change {limit:.2%} better"
    )
