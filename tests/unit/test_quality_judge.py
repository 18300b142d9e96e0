"""The quality benchmark's judge (benchmarks/judge.py): its numbers mean what the README
says, and it taps layers no benchmarked objective optimizes."""

from __future__ import annotations

import sys

import pytest
import torch
from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

from judge import (
    ENGINE_TAPS,
    HELD_OUT_TAPS,
    ISSUE_TAPS,
    PEER_TAPS,
    Judge,
    VGGTaps,
    gram,
    high_frequency_energy,
)

from nst_tui.engine.features import FeatureExtractor
from nst_tui.engine.prepare import get_backbone


def smooth(h: int, w: int, seed: int) -> torch.Tensor:
    """A smooth random image (noise upsampled), 1x3xHxW in 0..1."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, h // 8, w // 8, generator=gen)
    return torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear")


@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    return smooth(48, 64, 1), smooth(64, 64, 2)


@pytest.fixture(scope="module")
def judge(pair: tuple[torch.Tensor, torch.Tensor]) -> Judge:
    return Judge(*pair, also={"issue": ISSUE_TAPS})


def test_the_content_itself_is_at_content_distance_zero(judge: Judge, pair) -> None:
    scores = judge(pair[0])
    assert scores["content"] == 0 and scores["content_issue"] == 0
    assert scores["style"] > 0.01  # the content is not the style


def test_the_style_itself_is_at_style_distance_zero_and_artifacts_one(pair) -> None:
    content, style = pair
    # Same size as the content, so no resizing: exactly zero, and the artifact
    # reference is the style image itself.
    style = style[..., :48, :]
    judge = Judge(content, style, also={"issue": ISSUE_TAPS})
    scores = judge(style)
    assert scores["style"] == pytest.approx(0, abs=1e-12)
    assert scores["style_issue"] == pytest.approx(0, abs=1e-12)
    assert scores["artifacts"] == pytest.approx(1)
    assert scores["content"] > 0.01


def test_noise_raises_the_artifact_measure_and_both_distances(judge: Judge, pair) -> None:
    content = pair[0]
    gen = torch.Generator().manual_seed(0)
    noisy = (content + 0.2 * torch.randn(content.shape, generator=gen)).clamp(0, 1)
    clean, dirty = judge(content), judge(noisy)
    assert dirty["artifacts"] > 10 * clean["artifacts"]
    assert dirty["content"] > clean["content"]


def test_blocks_raise_the_artifact_measure(judge: Judge, pair) -> None:
    content = pair[0]
    blocky = torch.nn.functional.interpolate(
        torch.nn.functional.avg_pool2d(content, 8), scale_factor=8, mode="nearest"
    )
    assert judge(blocky)["artifacts"] > 2 * judge(content)["artifacts"]


def test_a_flat_image_has_no_high_frequency_energy() -> None:
    assert high_frequency_energy(torch.full((1, 3, 16, 16), 0.5)) == 0


def test_gram_is_per_position() -> None:
    f = torch.ones(1, 2, 4, 4)
    assert torch.equal(gram(f), torch.ones(2, 2))
    assert torch.equal(gram(torch.ones(1, 2, 8, 8)), gram(f))


def test_distances_are_relative(pair) -> None:
    """Scaling the error scales the distance, independent of the features' magnitude:
    a result halfway (in pixels) is nearer than one all the way."""
    content, style = pair
    judge = Judge(content, style)
    far, half = judge(style[..., :48, :]), judge(0.5 * (content + style[..., :48, :]))
    assert 0 < half["content"] < far["content"]


def test_a_result_of_another_size_is_judged_at_the_contents(judge: Judge, pair) -> None:
    big = torch.nn.functional.interpolate(pair[0], size=(96, 128), mode="bilinear")
    assert judge(big)["content"] < 0.05


def test_judge_taps_are_held_out_from_every_objective() -> None:
    held_out = {HELD_OUT_TAPS.content, *HELD_OUT_TAPS.style}
    assert not held_out & ENGINE_TAPS
    assert not held_out & PEER_TAPS
    # The objective's content tap (conv4_1) is not the judge's, nor the issue's.
    assert ISSUE_TAPS.content != "conv4_1" and HELD_OUT_TAPS.content != "conv4_1"


def test_taps_match_the_engines_relu_features() -> None:
    """relu1_1 .. relu5_1 of the judge's network are the engine's relu taps 0..4."""
    backbone = get_backbone("vgg16-caffe")
    image = smooth(32, 32, 3)
    names = set(ISSUE_TAPS.style)
    ours = VGGTaps(backbone, names)(image)
    engine = FeatureExtractor(backbone, {0, 1, 2, 3, 4}, "relu", "max")(image)
    for i, name in enumerate(ISSUE_TAPS.style):
        torch.testing.assert_close(ours[name], engine[i])


def test_unknown_taps_are_refused() -> None:
    with pytest.raises(ValueError, match="relu6_1"):
        VGGTaps(get_backbone("vgg16-caffe"), {"relu6_1"})
