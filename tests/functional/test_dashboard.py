"""The dashboard driven by keys through Textual's Pilot, with tiny real runs."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from conftest import STARRY, TUBINGEN, tiny_config
from textual import events
from textual.pilot import Pilot
from textual.widgets import Input, OptionList, Select, Sparkline, Static

from nst_tui import presets
from nst_tui.config import Config
from nst_tui.records import FILES
from nst_tui.tui.app import NSTApp
from nst_tui.tui.messages import NewsReady
from nst_tui.tui.news import CellNews, JobNews, NewsBox
from nst_tui.tui.pace import Pace
from nst_tui.tui.screens.file_picker import FilePicker
from nst_tui.tui.screens.help_screen import HelpScreen
from nst_tui.tui.screens.preset_picker import PresetPicker
from nst_tui.tui.screens.save_preset import SavePreset
from nst_tui.tui.widgets.loss_panel import LossPanel, short
from nst_tui.tui.widgets.params_form import FIELDS, LayerToggles
from nst_tui.tui.widgets.run_history import COLUMNS

SIZE = (120, 36)


def make_app(tmp_path: Path, config: Config | None = None, **kwargs: object) -> NSTApp:
    return NSTApp(
        config or tiny_config(),
        preset_name="tiny",
        outputs=tmp_path / "outputs",
        warm_up=False,
        **kwargs,  # type: ignore[arg-type]
    )


async def wait_for_run(pilot: Pilot, app: NSTApp, timeout: float = 120.0) -> None:
    waited = 0.0
    while app.active is not None:
        assert waited < timeout, "the run did not end in time"
        await pilot.pause(0.05)
        waited += 0.05
    await pilot.pause()


async def wait_until_running(pilot: Pilot, app: NSTApp, timeout: float = 120.0) -> None:
    waited = 0.0
    while not (app.status.state.state == "running" and app.status.state.iteration > 0):
        assert waited < timeout, "the run did not start in time"
        await pilot.pause(0.05)
        waited += 0.05


async def start_and_wait(pilot: Pilot, app: NSTApp) -> None:
    """ctrl+r, then wait until the run has made its first step."""
    await pilot.press("ctrl+r")
    await wait_until_running(pilot, app)


async def type_into(pilot: Pilot, app: NSTApp, field: str, text: str) -> None:
    """Focus a form field, clear it and type `text` as keys."""
    widget = app.form.widget(field)
    widget.focus()
    await pilot.pause()
    await pilot.press("ctrl+a", "ctrl+k")  # start of line, delete to the end
    await pilot.press(*text)
    await pilot.pause()


async def paste_into(pilot: Pilot, app: NSTApp, field: str, text: str) -> None:
    """Focus a form field, clear it and paste `text`, as a terminal delivers a paste
    (one event, not a key per character: a long path typed key by key costs seconds)."""
    app.form.widget(field).focus()
    await pilot.pause()
    await pilot.press("ctrl+a", "ctrl+k")
    app._driver.send_message(events.Paste(text))  # what the driver does with a paste
    await pilot.pause()


def history_row(app: NSTApp, run_id: int) -> dict[str, str]:
    cells = app.history.get_row(str(run_id))
    return dict(zip(COLUMNS, (str(c) for c in cells), strict=True))


# ---- start-up ----------------------------------------------------------------


async def test_first_screen_shows_the_config_and_is_idle(tmp_path: Path) -> None:
    config = tiny_config(iterations=17)
    app = make_app(tmp_path, config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.form.widget("iterations").value == "17"
        assert app.form.read() == (config, {})
        assert app.status.state.state == "idle"
        assert not app.session.jobs


# ---- runs ----------------------------------------------------------------------


async def test_fill_the_form_and_run(tmp_path: Path) -> None:
    app = NSTApp(Config(), outputs=tmp_path / "outputs", warm_up=False)
    async with app.run_test(size=SIZE) as pilot:
        await paste_into(pilot, app, "content_image", str(TUBINGEN))
        await paste_into(pilot, app, "style_image", str(STARRY))
        await type_into(pilot, app, "size", "32")
        await type_into(pilot, app, "iterations", "6")
        await type_into(pilot, app, "sav_freq", "2")
        await type_into(pilot, app, "backbone", "vgg16-caffe")
        await type_into(pilot, app, "device", "cpu")
        assert app.form.errors == {}
        await pilot.press("ctrl+r")  # with an Input focused
        await wait_for_run(pilot, app)

        record = app.session.jobs[1].record
        assert record.status == "finished"
        row = history_row(app, 1)
        assert row["status"] == "finished"
        assert "size=32" in row["changes"] and "iterations=6" in row["changes"]
        assert row["total"] != "-"

        folder = record.folder
        assert folder is not None and folder.parent == tmp_path / "outputs"
        assert all((folder / name).is_file() for name in FILES)
        summary = json.loads((folder / "run.json").read_text())
        assert summary["status"] == "finished"

        # Every logged iteration reached the sparklines: 2, 4, 6.
        series = app.query_one(LossPanel).series
        assert len(series["total"]) == 3
        assert series["total"][-1] == pytest.approx(record.losses["total"])
        assert len(app.query_one("#spark-total", Sparkline).data or []) == 3
        csv_rows = (folder / "losses.csv").read_text().strip().splitlines()[1:]
        assert len(csv_rows) == 3

        status = app.status.state
        assert (status.state, status.iteration, status.total) == ("finished", 6, 6)
        assert status.folder == folder
        assert (status.device, status.backbone) == ("cpu", "vgg16-caffe")
        assert app.pane.canvas.image is not None
        # The counted work per second, as run.json has it; a CPU has no peak to divide by.
        assert status.tflop_s == pytest.approx(summary["tflop_s"], rel=1e-3)
        shown = str(app.status.render())
        assert f"{summary['tflop_s'] * 1e3:.1f} GFLOP/s" in shown
        assert "of peak" not in shown


async def test_cancel_marks_and_saves_the_run(tmp_path: Path) -> None:
    app = make_app(tmp_path, tiny_config(iterations=5000, sav_freq=1))
    async with app.run_test(size=SIZE) as pilot:
        await start_and_wait(pilot, app)
        await pilot.press("escape")
        await wait_for_run(pilot, app, timeout=30)
        record = app.session.jobs[1].record
        assert record.status == "cancelled"
        assert history_row(app, 1)["status"] == "cancelled"
        assert app.status.state.state == "cancelled"
        summary = json.loads((record.folder / "run.json").read_text())  # type: ignore[operator]
        assert summary["status"] == "cancelled"
        assert 0 < summary["iterations_done"] < 5000

        # The next run works.
        app.form.widget("iterations").value = "2"
        await pilot.press("ctrl+r")
        await wait_for_run(pilot, app)
        assert app.session.jobs[2].record.status == "finished"


async def test_escape_stops_a_job_as_ctrl_c_does_in_the_cli(tmp_path: Path) -> None:
    # nst_tui/job/stop.py: cancel, then hurry (the record without its GIF). A real run
    # ends too soon after the first escape to catch the second; the job here waits.
    from nst_tui.tui.session import ActiveJob

    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        job = ActiveJob(None, threading.Event(), 0.0)  # type: ignore[arg-type]
        app.session.active = job
        await pilot.press("escape")
        assert job.cancel.is_set() and not job.hurry.is_set()
        assert app.status.state.state == "cancelling"
        await pilot.press("escape")
        assert job.hurry.is_set()
        assert any("without the GIF" in n.message for n in app._notifications)
        app.session.active = None


async def test_tab_enters_the_first_field_and_text_takes_its_keys(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("tab")
        assert app.focused is app.form.widget("content_image")
        layers = app.query_one(LayerToggles).read()
        await pilot.press("ctrl+a", "ctrl+k", *"/tmp/1@")
        assert app.form.widget("content_image").value == "/tmp/1@"
        assert app.query_one(LayerToggles).read() == layers
        # Not offered while typing: the footer shows no layer key.
        from textual.widgets._footer import FooterKey

        assert not [k for k in app.query(FooterKey) if k.action.startswith("toggle_layer(")]


async def test_a_run_that_would_fail_on_its_inputs_is_blocked(tmp_path: Path) -> None:
    (tmp_path / "not-a-run").mkdir()
    app = make_app(tmp_path, tiny_config(iterations=2, content_image=str(tmp_path / "nope.jpg")))
    async with app.run_test(size=SIZE) as pilot:
        assert "nope.jpg" in app.form.errors["content_image"]
        assert app.form.widget("content_image").has_class("-invalid")
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not app.session.jobs and app.active is None
        assert app.focused is app.form.widget("content_image")
        assert any("Run blocked" in n.title for n in app._notifications)

        await paste_into(pilot, app, "content_image", str(TUBINGEN))
        assert app.form.errors == {}
        await paste_into(pilot, app, "init", f"run:{tmp_path / 'not-a-run'}")
        assert "not-a-run" in app.form.errors["init"]
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not app.session.jobs


async def test_a_bad_image_is_reported_and_the_app_keeps_working(tmp_path: Path) -> None:
    # Damaged past its header: only decoding finds it, so the run starts and fails.
    damaged = tmp_path / "damaged.jpg"
    damaged.write_bytes(TUBINGEN.read_bytes()[:2000])
    app = make_app(tmp_path, tiny_config(iterations=2, content_image=str(damaged)))
    async with app.run_test(size=SIZE) as pilot:
        assert app.form.errors == {}
        await pilot.press("ctrl+r")
        await wait_for_run(pilot, app)
        assert app.session.jobs[1].record.status == "failed"
        assert "damaged.jpg" in app.session.jobs[1].record.reason
        assert app.status.state.state == "failed"
        assert any("damaged.jpg" in n.message for n in app._notifications)

        app.form.widget("content_image").value = str(TUBINGEN)
        await pilot.press("ctrl+r")
        await wait_for_run(pilot, app)
        assert app.session.jobs[2].record.status == "finished"


async def test_quit_while_running_cancels_and_saves_first(tmp_path: Path) -> None:
    app = make_app(tmp_path, tiny_config(iterations=5000, sav_freq=1))
    async with app.run_test(size=SIZE) as pilot:
        await start_and_wait(pilot, app)
        await pilot.press("ctrl+q")
        waited = 0.0
        while app.is_running and waited < 30:
            await pilot.pause(0.05)
            waited += 0.05
    assert app.return_code == 0
    record = app.session.jobs[1].record
    assert record.status == "cancelled"
    assert (record.folder / "run.json").is_file()  # type: ignore[operator]


async def test_q_asks_before_quitting_a_running_job(tmp_path: Path) -> None:
    app = make_app(tmp_path, tiny_config(iterations=5000, sav_freq=1))
    async with app.run_test(size=SIZE) as pilot:
        await start_and_wait(pilot, app)
        await pilot.press("q")
        await pilot.pause(0.3)
        assert app.is_running and app.active is not None and not app.active.cancel.is_set()
        asked = [n for n in app._notifications if n.title == "A run is going"]
        assert asked and "saved, marked cancelled" in asked[0].message
        await pilot.press("q")
        waited = 0.0
        while app.is_running and waited < 30:
            await pilot.pause(0.05)
            waited += 0.05
    assert app.session.jobs[1].record.status == "cancelled"


async def test_rerun_and_load_from_the_history(tmp_path: Path) -> None:
    app = make_app(tmp_path, tiny_config(iterations=2, sav_freq=1))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+r")
        await wait_for_run(pilot, app)
        app.form.widget("iterations").value = "3"
        await pilot.pause()

        app.history.focus()
        await pilot.press("r")  # reruns the highlighted row, not the form
        await wait_for_run(pilot, app)
        assert app.session.jobs[2].record.config == app.session.jobs[1].record.config
        assert app.session.jobs[2].record.status == "finished"

        app.history.move_cursor(row=0)
        await pilot.pause()
        assert app.pane.canvas.image is app.session.jobs[1].final
        await pilot.press("l")
        await pilot.pause()
        assert app.form.widget("iterations").value == "2"

        await pilot.press("n")  # continue run 1 from its final image
        await pilot.pause()
        folder = app.session.jobs[1].record.folder
        assert app.form.widget("init").value == f"run:{folder}"
        await pilot.press("ctrl+r")
        await wait_for_run(pilot, app)
        assert app.session.jobs[3].record.config.init == f"run:{folder}"
        assert app.session.jobs[3].record.status == "finished"


async def test_continue_shows_and_records_the_run_folder_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = NSTApp(tiny_config(iterations=2, sav_freq=1), outputs=Path("outputs"), warm_up=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+r")
        await wait_for_run(pilot, app)
        app.history.focus()
        await pilot.press("n")
        await pilot.pause()
        folder = (tmp_path / app.session.jobs[1].record.folder).resolve()  # type: ignore[operator]
        assert app.form.widget("init").value == f"run:{folder}"


# ---- the form ---------------------------------------------------------------------


async def test_invalid_values_are_marked_and_block_the_run(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await type_into(pilot, app, "size", "abc")
        await type_into(pilot, app, "lr", "-1")
        message = str(app.query_one("#error-size").render())
        assert message == "must be a whole number, got 'abc'"
        assert "must be a number above 0" in str(app.query_one("#error-lr").render())
        assert app.form.widget("size").has_class("-invalid")

        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not app.session.jobs and app.active is None
        assert app.focused is app.form.widget("size")  # taken to the first bad field

        await type_into(pilot, app, "size", "8")
        assert "must be between 16 and 8192, got 8" in str(app.query_one("#error-size").render())
        await type_into(pilot, app, "size", "32")
        await type_into(pilot, app, "lr", "0.1")
        assert app.form.errors == {}
        assert not app.query_one("#error-size").has_class("-shown")
        assert str(app.query_one("#error-size").render()) == ""

        # Keys in a valid form leave the error labels alone: each label update lays the
        # whole screen out again, which every key would pay for.
        updates: list[str] = []

        def recorded(label: Static) -> object:
            def update(content: str = "", **kwargs: object) -> None:
                updates.append(content)
                Static.update(label, content, **kwargs)  # type: ignore[arg-type]

            return update

        for label in app.query(".field-error").results(Static):
            label.update = recorded(label)  # type: ignore[method-assign]
        app.form.widget("lr").focus()
        await pilot.press("end", "5")  # 0.15: valid at every key
        assert app.form.errors == {} and updates == []
        await pilot.press("x", "backspace")
        assert updates == ["must be a number, got '0.15x'", ""]
        del updates[:]
        for label in app.query(".field-error").results(Static):
            del label.update  # back to Static's own

        # No style layer at all is the Config's error too, shown under the toggles.
        await pilot.press("f3")  # the layer keys are the form's
        await pilot.press("exclamation_mark", "at", "number_sign", "dollar_sign", "percent_sign")
        assert "style_layers" in app.form.errors
        assert "needs at least one style layer" in str(
            app.query_one("#error-style_layers").render()
        )
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not app.session.jobs


async def test_loading_a_preset_changes_every_field(tmp_path: Path) -> None:
    everything = Config(
        iterations=77,
        size=48,
        sav_freq=7,
        fps=12,
        alpha=2.5,
        beta=123.0,
        gamma=0.5,
        style_weights=(1.0, 2.0, 3.0, 4.0, 5.0),
        lr=0.5,
        optimizer="lbfgs",
        history=9,
        init="content",
        content_layers=(1, 2),
        style_layers=(0, 4),
        layer_type="relu",
        mode="both",
        content_image=str(STARRY),
        style_image=str(TUBINGEN),
        seed=42,
        pooling="avg",
        backbone="vgg16-caffe",
        device="cpu",
        style_scale=1.5,
        normalize_style_weights=True,
        normalize_losses=True,
        tv="l2",
        style_stats="w2",
        adam_beta2=0.99,
        original_colors=True,
        scales=(32, 48),
        carry_moments=True,
        style_images=(str(STARRY),),
        style_blend=(0.25, 0.75),
        ema=0.5,
        precision="bf16",
        cuda_graphs=False,
        executor="ray",
        ray_address="auto",
        stop_change=0.01,
        stop_window=20,
        max_memory="6GiB",
        tile=64,
    )
    # Really every field, but the histogram term: tiles refuse it (it ranks each channel
    # over the whole canvas), so the two cannot both change; tile is the newer one.
    assert set(Config().to_dict()) - set(everything.differences()) == {"histogram"}
    presets.save(everything, "everything", "all fields changed")

    app = NSTApp(Config(), outputs=tmp_path / "outputs", warm_up=False)
    async with app.run_test(size=SIZE) as pilot:
        before = {f.name: app.form.widget(f.name).value for f in FIELDS}
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, PresetPicker)
        options = app.screen.query_one(OptionList)
        index = next(
            i
            for i in range(options.option_count)
            if (options.get_option_at_index(i).id or "").endswith("everything.toml")
        )
        options.highlighted = index
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, PresetPicker)

        after = {f.name: app.form.widget(f.name).value for f in FIELDS}
        assert [n for n in before if before[n] == after[n]] == ["histogram"]
        assert app.form.read() == (everything, {})
        assert app.session.preset_name == "everything"
        assert str(app.query_one("#layer-name-0").render()) == "1 relu1_1"


async def test_save_the_form_as_a_preset(tmp_path: Path) -> None:
    config = tiny_config(iterations=33)
    app = make_app(tmp_path, config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SavePreset)
        await pilot.press(*"mine", "enter")
        await pilot.pause()
        assert not isinstance(app.screen, SavePreset)
        assert presets.load("mine").config == config

        # The same name again: refused in the modal, then allowed with overwrite.
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.press(*"mine", "enter")
        await pilot.pause()
        assert isinstance(app.screen, SavePreset)
        assert "already exists" in str(app.screen.query_one("#save-error").render())
        app.screen.query_one("#preset-overwrite").value = True  # type: ignore[attr-defined]
        app.screen.query_one("#preset-name", Input).focus()
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, SavePreset)


async def test_file_picker_fills_an_image_field(tmp_path: Path) -> None:
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    (pictures / "notes.txt").write_text("not an image")
    TUBINGEN_COPY = pictures / "a.jpg"
    TUBINGEN_COPY.write_bytes(TUBINGEN.read_bytes())
    app = make_app(tmp_path, tiny_config(content_image=str(pictures / "missing.jpg")))
    async with app.run_test(size=SIZE) as pilot:
        app.form.widget("content_image").focus()
        await pilot.press("ctrl+f")
        await pilot.pause(0.3)
        assert isinstance(app.screen, FilePicker)
        tree = app.screen.query_one("#files-tree")
        labels = [str(node.label) for node in tree.root.children]  # type: ignore[attr-defined]
        assert labels == ["a.jpg"]  # folders and images only
        tree.focus()
        await pilot.press("down", "enter")
        await pilot.pause()
        assert app.form.widget("content_image").value == str(TUBINGEN_COPY)


# ---- every documented key -----------------------------------------------------------


async def test_every_documented_key(tmp_path: Path) -> None:
    app = make_app(tmp_path, tiny_config(iterations=2, sav_freq=1))
    async with app.run_test(size=SIZE) as pilot:
        toggles = app.query_one(LayerToggles)
        # In a field, digits and q are text, not keys.
        await type_into(pilot, app, "seed", "1q")
        assert app.form.widget("seed").value == "1q"
        assert toggles.box("content", 0).value is False and app.is_running
        app.form.widget("seed").value = "0"
        # With nothing focused the layer keys do nothing (they are the form's).
        app.screen.set_focus(None)
        before = toggles.read()
        await pilot.press("1", "at")
        assert toggles.read() == before

        await pilot.press("f3")  # to the layer toggles
        assert app.focused is toggles.box("content", 0)
        heard: list[str] = []  # what was said (a note expires in 2 s: a slow CI may miss it)
        tell = app.notify
        app.notify = lambda message, **kw: (heard.append(message), tell(message, **kw))[1]  # type: ignore[method-assign]
        for key, kind, index in [("1", "content", 0), ("5", "content", 4), ("at", "style", 1)]:
            before_box = toggles.box(kind, index).value
            await pilot.press(key)
            await pilot.pause()
            now = toggles.box(kind, index).value
            assert now is not before_box, key
            said = f"{kind} layer {index + 1} conv{index + 1}_1 {'on' if now else 'off'}"
            assert heard and heard[-1] == said
        app.form.widget("optimizer").focus()  # a choice field takes no digits: they toggle
        before_box = toggles.box("content", 1).value
        await pilot.press("2")
        assert toggles.box("content", 1).value is not before_box

        for key in ("f1", "question_mark"):
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen), key
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, HelpScreen)

        app.form.widget("iterations").focus()  # these keys work while typing in a field
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, PresetPicker)
        await pilot.press("ctrl+r")  # not behind a modal
        await pilot.press("escape")
        await pilot.pause()
        assert not app.session.jobs and not isinstance(app.screen, PresetPicker)

        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SavePreset)
        await pilot.press("escape")
        await pilot.pause()

        app.form.widget("iterations").focus()
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.form.read() == (Config(), {})
        assert isinstance(app.form.widget("optimizer"), Select)

        app.form.load(tiny_config(iterations=2, sav_freq=1))
        await pilot.press("ctrl+r")
        await wait_for_run(pilot, app)
        assert app.session.jobs[1].record.status == "finished"

        app.history.focus()
        await pilot.press("r")
        await wait_for_run(pilot, app)
        await pilot.press("l")
        assert len(app.session.jobs) == 2

        app.screen.set_focus(None)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


async def test_ctrl_l_shows_one_sparkline_per_layer_term(tmp_path: Path) -> None:
    cfg = tiny_config(iterations=6, sav_freq=2, content_layers=[2], style_layers=[0, 3])
    app = make_app(tmp_path, cfg)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+r")
        await wait_for_run(pilot, app)
        panel = app.query_one(LossPanel)
        rows = list(panel.query(".loss-layer-row"))
        assert [r.term for r in rows] == ["content/conv3_1", "style/conv1_1", "style/conv4_1"]
        assert not any(r.display for r in rows)  # hidden until asked for

        app.form.widget("iterations").focus()  # works while typing in a field
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert all(r.display for r in rows) and panel.border_subtitle == "per layer"
        shown = {str(r.name_label.render()).split()[1]: r for r in rows}
        assert set(shown) == {"conv3_1", "conv1_1", "conv4_1"}
        finals = app.session.jobs[1].record.losses
        for row in rows:
            assert len(row.spark.data) == 3  # iterations 2, 4, 6
            assert str(row.value_label.render()) == short(finals[row.term])

        await pilot.press("ctrl+l")
        await pilot.pause()
        assert not any(r.display for r in rows) and panel.border_subtitle == ""


async def test_start_at_once_runs_the_preset(tmp_path: Path) -> None:
    app = make_app(tmp_path, tiny_config(iterations=2), start=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.session.jobs, "the run started without a key"
        await wait_for_run(pilot, app)
        assert app.session.jobs[1].record.status == "finished"


def test_run_dashboard_opens_the_named_preset(tmp_path: Path, monkeypatch) -> None:
    from nst_tui.errors import PresetError
    from nst_tui.tui import app as app_module

    presets.save(tiny_config(iterations=21), "mine")
    opened: list[NSTApp] = []

    def fake_run(self: NSTApp) -> int:
        opened.append(self)
        return 0

    monkeypatch.setattr(app_module.NSTApp, "run", fake_run)
    assert app_module.run_dashboard("mine", start=True) == 0
    app = opened[0]
    assert (app.initial.iterations, app.session.preset_name, app.start_at_once) == (
        21,
        "mine",
        True,
    )
    assert app.outputs == Path("outputs")
    with pytest.raises(PresetError):
        app_module.run_dashboard("no-such-preset", start=False)

    # The default preset unreadable: the form holds Config(), the study's values, named so.
    def no_preset(name: str) -> object:
        raise PresetError(f"preset {name!r}: unreadable")

    monkeypatch.setattr(app_module.presets, "load", no_preset)
    assert app_module.run_dashboard(None, start=False) == 0
    assert (opened[-1].initial, opened[-1].session.preset_name) == (Config(), "study")


# ---- coalescing -------------------------------------------------------------------------


def test_progress_messages_replace_each_other_without_losing_rows() -> None:
    """A newer message only stands for the older: the rows of both wait in the box."""
    box = NewsBox(Pace())
    box.put(JobNews({0: CellNews([(1, {"total": 3.0})], 1, "old")}, 1, 10, 1.0))
    older = NewsReady(1, box)
    box.put(JobNews({0: CellNews([(2, {"total": 2.0})], 2, None)}, 2, 10, 1.0))
    newer = NewsReady(1, box)
    assert older.can_replace(newer)
    assert (older.box, older.job_id) == (newer.box, newer.job_id)  # neither changed
    news = newer.box.take()
    assert news is not None and [it for it, _ in news.cells[0].rows] == [1, 2]
    assert news.cells[0].preview == "old"  # the newest canvas that exists
    assert (news.completed, news.total) == (2, 10)
    assert box.take() is None  # taken once: a message still queued finds nothing
    assert not newer.can_replace(NewsReady(2, NewsBox(Pace())))


async def test_the_engine_warm_up_imports_and_leaves_the_app_idle(tmp_path: Path) -> None:
    app = NSTApp(Config(), outputs=tmp_path / "outputs")  # warm_up on, as `nst-tui` runs
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        for _ in range(100):  # the worker's state change reaches the app as a message
            await pilot.pause(0.05)
            if app.status.state.state != "loading":
                break
        assert app.status.state.state == "idle", app.status.state
        assert "cannot import" not in str(app.status.state)


@pytest.mark.parametrize("size", [(160, 48), (80, 24)])
async def test_the_ten_layer_toggles_are_shown(tmp_path: Path, size: tuple[int, int]) -> None:
    app = make_app(tmp_path, tiny_config(layer_type="relu"))
    async with app.run_test(size=size) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        toggles = app.query_one(LayerToggles)
        for i in range(5):
            for kind in ("content", "style"):
                box = toggles.box(kind, i)
                assert box.display and box.visible and box.region.area > 0, (kind, i)
            name = app.query_one(f"#layer-name-{i}")
            assert name.region.area > 0 and str(name.render()) == f"{i + 1} relu{i + 1}_1"
        # What a user reads: the five rows' names on the screen as drawn.
        screen = app.export_screenshot()
        for i in range(5):
            assert f"relu{i + 1}_1" in screen


@pytest.mark.parametrize("width", [80, 120, 160])
async def test_the_footer_keeps_run_help_and_quit(tmp_path: Path, width: int) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(width, 24)) as pilot:
        await pilot.pause()
        from textual.widgets._footer import FooterKey

        shown = {k.action: k for k in app.query(FooterKey) if k.display}
        assert {"run", "help", "quit", "focus_layers", "pick_preset"} <= set(shown)
        right = max(k.region.right for k in shown.values())
        assert right <= width, "a key is cut at the right edge"
