"""Choosing where a job runs: Config.executor / ray_address, the CLI flags, the plan's
split for a cluster's workers, and a clear message when Ray is not installed."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT, tiny_config

from nst_tui import cli
from nst_tui.config import Config
from nst_tui.errors import ConfigError, NSTError
from nst_tui.job.executor import executor_named
from nst_tui.job.plan import expand, plan_batches


@pytest.mark.parametrize("address", ["", "auto", "10.0.0.5:6379", "head:6379", "ray://h:10001"])
def test_ray_address_accepted(address: str) -> None:
    assert Config(executor="ray", ray_address=address).ray_address == address


@pytest.mark.parametrize("address", ["head", ":6379", "head:port", "a b:1", "ray://"])
def test_ray_address_rejected(address: str) -> None:
    with pytest.raises(ConfigError, match="ray_address"):
        Config(ray_address=address)


def test_unknown_executor_rejected() -> None:
    with pytest.raises(ConfigError, match="executor: must be one of local, ray"):
        Config.from_dict({"executor": "dask"})


def test_cli_flags_set_the_config() -> None:
    args = cli.build_parser().parse_args(["run", "--executor", "ray", "--address", "auto"])
    assert (args.executor, args.address) == ("ray", "auto")
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["run", "--executor", "dask"])


def test_address_without_ray_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--address", "auto"]) == cli.EXIT_USAGE
    assert "add --executor ray" in capsys.readouterr().err


def test_missing_ray_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails, as without the extra
    monkeypatch.delitem(sys.modules, "nst_tui.job.ray_executor", raising=False)
    with pytest.raises(NSTError, match=r"pip install 'nst-tui\[ray\]'"):
        executor_named("ray")


def test_cli_without_ray_exits_2(monkeypatch: pytest.MonkeyPatch, tmp_path, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.delitem(sys.modules, "nst_tui.job.ray_executor", raising=False)
    code = cli.main(["run", "--executor", "ray", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "pip install 'nst-tui[ray]'" in err
    assert len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # no folder before the executor exists


def test_plan_gives_every_worker_a_batch() -> None:
    job = expand(tiny_config(), {"alpha": [1.0, 2.0, 3.0, 4.0, 5.0]})
    assert [b.cells for b in plan_batches(job)] == [(0, 1, 2, 3, 4)]
    assert [b.cells for b in plan_batches(job, workers=2)] == [(0, 1), (2, 3, 4)]
    three = plan_batches(job, workers=3)
    assert [(b.cells, b.batched) for b in three] == [((1, 2), True), ((3, 4), True), ((0,), False)]
    # More workers than cells: each cell alone, as a single run.
    assert [b.cells for b in plan_batches(job, workers=8)] == [(i,) for i in range(5)]
    # Batches already small enough for the workers are left as they are.
    small = plan_batches(job, max_pixels=2 * 32 * 32, workers=2)
    assert [b.cells for b in small] == [(0, 1), (2, 3), (4,)]


def test_engine_and_local_path_never_import_ray_or_torchvision() -> None:
    # Ray is the Ray executor's alone; torchvision (0.2-0.3 s at every start) is not needed
    # to run at all.
    code = (
        "import sys, nst_tui.cli, nst_tui.job.run, nst_tui.job.local, nst_tui.job.lifecycle, "
        "nst_tui.engine.optimize; from nst_tui.job.executor import executor_named; "
        "executor_named('local'); print([m in sys.modules for m in ('ray', 'torchvision')])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[False, False]"
