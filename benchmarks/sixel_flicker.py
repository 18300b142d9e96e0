"""Does a sixel picture flicker when it is replaced? Screenshots of a real terminal count it.

    python benchmarks/sixel_flicker.py host ours|stock [SECONDS]   # inside the terminal
    python benchmarks/sixel_flicker.py measure WINDOW_ID [SHOTS]    # beside it (X11)

`host` shows one picture, 80x24 cells, replaced 10 times a second (a rotating photo), drawn
by nst-tui's PixelView (`ours`) or by textual-image's own sixel widget (`stock`).
`measure` takes SHOTS screenshots of the terminal's window (ImageMagick's `import`) and
counts those where the picture's area is mostly the background: the terminal showing it
cleared between two frames. As run for benchmarks/README.md (Xvfb, Debian's xterm):

    Xvfb :99 -screen 0 1600x1000x24 &
    DISPLAY=:99 xterm -ti vt340 -geometry 160x48 -fa Monospace -fs 9 -title fl \\
        -e python benchmarks/sixel_flicker.py host stock 120 &
    WINDOW=$(DISPLAY=:99 xdotool search --name '^fl$')
    DISPLAY=:99 python benchmarks/sixel_flicker.py measure "$WINDOW" 100
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CELL = (9, 18)  # xterm -fa Monospace -fs 9


def host(mode: str, seconds: float) -> None:
    from nst_tui.tui import graphics

    graphics.use(graphics.detect("auto"))
    from PIL import Image
    from textual.app import App, ComposeResult
    from textual.widget import Widget
    from textual.widgets import Label

    photo = Image.open(ROOT / "nst_tui" / "assets" / "chelsea.png").convert("RGB")
    photo = photo.resize((600, 400))
    frames = [photo.rotate(k * 3, fillcolor=(200, 50, 50)) for k in range(20)]

    class Host(App[None]):
        CSS = "#picture { width: 80; height: 24; }"

        def compose(self) -> ComposeResult:
            yield Label(f"{mode}: {graphics.current().reason}")
            widget: Widget
            if mode == "ours":
                from nst_tui.tui.widgets.pixels import PixelView

                widget = PixelView("", id="picture")
            else:
                from textual_image.widget import Image as Stock

                widget = Stock(None, id="picture")
            yield widget

        def on_mount(self) -> None:
            self.k, self.start = 0, time.monotonic()
            self.set_interval(0.1, self.tick)

        def tick(self) -> None:
            self.k += 1
            self.query_one("#picture").image = frames[self.k % len(frames)]  # type: ignore[attr-defined]
            if time.monotonic() - self.start > seconds:
                self.exit()

    Host().run()


def measure(window: str, shots: int) -> None:
    import numpy as np
    from PIL import Image

    cleared, fractions, start = 0, [], time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        shot = Path(tmp) / "shot.png"
        for _ in range(shots):
            done = subprocess.run(["timeout", "10", "import", "-window", window, str(shot)])
            if done.returncode:
                break
            pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
            background = pixels[800, 1400]  # an empty spot, far from the picture
            w, h = CELL
            area = pixels[h * 3 : h * 20, w * 5 : w * 60]  # well inside the picture
            fraction = float((np.abs(area - background).sum(-1) <= 6).mean())
            fractions.append(fraction)
            cleared += fraction > 0.5
    took = time.monotonic() - start
    print(
        f"{len(fractions)} shots in {took:.1f}s: {cleared} with the picture's area mostly "
        f"cleared (background share: median {np.median(fractions):.3f}, max {max(fractions):.3f})"
    )


if __name__ == "__main__":
    if sys.argv[1] == "host":
        host(sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 60.0)
    else:
        measure(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 100)
