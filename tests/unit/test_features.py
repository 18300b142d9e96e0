"""The extractor: conv and relu taps really differ, and it runs only as deep as asked."""

from __future__ import annotations

import torch

from nst_tui.engine.features import FeatureExtractor, layer_name


def count_conv_calls(extractor: FeatureExtractor, image: torch.Tensor) -> int:
    calls = []
    hooks = [
        conv.register_forward_hook(lambda *_: calls.append(1))
        for block in extractor.blocks
        for conv in block
    ]
    extractor(image)
    for h in hooks:
        h.remove()
    return len(calls)


def test_conv_and_relu_taps_differ(caffe) -> None:
    image = torch.rand(1, 3, 32, 32)
    conv = FeatureExtractor(caffe, [0, 2], "conv", "max")(image)
    relu = FeatureExtractor(caffe, [0, 2], "relu", "max")(image)
    for i in (0, 2):
        assert (conv[i] < 0).any(), "a conv tap must keep its negative responses"
        assert (relu[i] >= 0).all()
        assert not torch.equal(conv[i], relu[i])
        assert torch.allclose(relu[i], conv[i].clamp(min=0))


def test_truncates_at_the_deepest_tap(caffe) -> None:
    image = torch.rand(1, 3, 32, 32)
    shallow = FeatureExtractor(caffe, [0], "conv", "max")
    assert count_conv_calls(shallow, image) == 1  # conv1_1 only: conv5 never runs
    # VGG16: blocks of 2, 2, 3, 3 convs, then conv5_1.
    deep = FeatureExtractor(caffe, [1, 4], "relu", "max")
    assert count_conv_calls(deep, image) == 2 + 2 + 3 + 3 + 1
    feats = deep(image)
    assert set(feats) == {1, 4}
    assert feats[1].shape == (1, 128, 16, 16)
    assert feats[4].shape == (1, 512, 2, 2)


def test_avg_pooling_changes_deeper_features_only(caffe) -> None:
    image = torch.rand(1, 3, 32, 32)
    mx = FeatureExtractor(caffe, [0, 1], "conv", "max")(image)
    av = FeatureExtractor(caffe, [0, 1], "conv", "avg")(image)
    assert torch.equal(mx[0], av[0])
    assert not torch.allclose(mx[1], av[1])


def test_extractor_is_frozen(caffe) -> None:
    ext = FeatureExtractor(caffe, [3], "conv", "max")
    assert not any(p.requires_grad for p in ext.parameters())
    assert not ext.training


def test_layer_names_follow_the_layer_type() -> None:
    assert layer_name(0, "conv") == "conv1_1"
    assert layer_name(4, "relu") == "relu5_1"
