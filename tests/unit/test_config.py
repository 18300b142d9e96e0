"""Config defaults, validation messages, TOML round trip and --set parsing."""

from __future__ import annotations

import tomllib

import pytest

from nst_tui.config import Config, parse_assignment, parse_value
from nst_tui.errors import ConfigError


def test_defaults_are_the_studys() -> None:
    c = Config()
    assert (c.iterations, c.size, c.sav_freq, c.fps) == (2500, 128, 10, 30)
    assert (c.alpha, c.beta, c.gamma, c.lr) == (5.0, 7000.0, 1.2, 0.06)
    assert c.style_weights == tuple(1e3 / n**2 for n in (16, 32, 128, 256, 512))
    assert (c.optimizer, c.init, c.mode, c.layer_type) == ("adam", "noise", "reconstruct", "conv")


def test_toml_round_trip_keeps_every_field() -> None:
    c = Config.from_dict(
        {
            "iterations": 7,
            "style_weights": [1, 2, 3, 4, 5.5],
            "content_layers": [0, 4],
            "init": 'a "quoted" path.png',
            "optimizer": "lbfgs",
            "layer_type": "relu",
        }
    )
    data = tomllib.loads(c.to_toml("desc"))
    assert data.pop("description") == "desc"
    assert Config.from_dict(data) == c


@pytest.mark.parametrize(
    ("values", "field", "text"),
    [
        ({"iterations": 0}, "iterations", "between 1 and"),
        ({"iterations": 2.5}, "iterations", "whole number"),
        ({"size": 8}, "size", "between 16 and 8192"),
        ({"sav_freq": 0}, "sav_freq", "between 1"),
        ({"fps": 500}, "fps", "between 1 and 50"),
        ({"alpha": -1}, "alpha", "between 0"),
        ({"beta": "a lot"}, "beta", "must be a number"),
        ({"gamma": float("nan")}, "gamma", "finite"),
        ({"lr": 0}, "lr", "above 0"),
        ({"style_weights": [1, 2]}, "style_weights", "5 numbers"),
        ({"style_weights": [1, 2, 3, 4, -1]}, "style_weights", "0 or more"),
        ({"optimizer": "sgd"}, "optimizer", "adam, lbfgs"),
        ({"layer_type": "pool"}, "layer_type", "conv, relu"),
        ({"mode": "dream"}, "mode", "reconstruct, content, style, both"),
        ({"pooling": "min"}, "pooling", "max, avg"),
        ({"backbone": "resnet"}, "backbone", ".pth"),
        ({"device": "tpu"}, "device", "cuda:N"),
        ({"content_layers": [5]}, "content_layers", "0..4"),
        ({"style_layers": [-1]}, "style_layers", "0..4"),
        ({"style_layers": [1, 1]}, "style_layers", "twice"),
        ({"content_layers": "3"}, "content_layers", "must be a list"),
        ({"content_layers": [], "mode": "content"}, "content_layers", "needs at least one"),
        ({"style_layers": [], "mode": "both"}, "style_layers", "needs at least one"),
        ({"content_image": " "}, "content_image", "path to an image"),
        ({"init": ""}, "init", "noise, content, style"),
        ({"seed": -3}, "seed", "between 0"),
        ({"history": 0}, "history", "between 1"),
        ({"itertions": 5}, "itertions", "did you mean 'iterations'"),
    ],
)
def test_each_invalid_value_names_its_field(values: dict, field: str, text: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_dict(values)
    assert field in info.value.errors
    assert text in info.value.errors[field]
    assert field in str(info.value)


def test_style_mode_needs_no_content_layers() -> None:
    assert Config.from_dict({"mode": "style", "content_layers": []}).content_layers == ()


def test_parse_value_reads_toml_and_bare_words() -> None:
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value('"lbfgs"') == "lbfgs"
    assert parse_value("lbfgs") == "lbfgs"
    assert parse_value("1e-3") == 1e-3
    assert parse_assignment("content_layers=[1]") == ("content_layers", [1])


def test_parse_assignment_rejects_unknown_keys_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="did you mean 'alpha'"):
        parse_assignment("alpah=3")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_assignment("iterations")


def test_differences_lists_changed_fields() -> None:
    c = Config().replace(iterations=10, optimizer="lbfgs")
    assert c.differences() == {"iterations": 10, "optimizer": "lbfgs"}
