"""Paint the default style image, swirls.png: `python -m nst_tui.assets.make_swirls`.

A style image has to give the Gram matrices something to hold on to at every
tapped layer: high-contrast edges for conv1_1, stroke-sized texture for
conv2_1 and conv3_1, and large swirls and colour regions for the deep layers.
So the painting is built in passes from big to small: a colour-field
underpainting, then thousands of short thick strokes that follow a swirling
flow field, each with a dark rim and a light core (impasto), in a Van
Gogh-like palette of deep blues, cyans, yellows and some orange.

Deterministic: numpy's seeded generator and PIL's rasteriser give the same
bytes on every run, so the shipped PNG can be regenerated and diffed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

WIDTH, HEIGHT = 512, 384
SEED = 1889  # the year of The Starry Night
OUT = Path(__file__).with_name("swirls.png")

# (x, y, radius, strength): vortex centres in pixels; positive turns counter-clockwise.
VORTICES = (
    (150, 120, 95, 1.0),
    (370, 90, 70, -0.9),
    (300, 250, 120, 1.1),
    (70, 300, 80, -0.8),
    (460, 310, 65, 0.9),
)
# Bright "stars" that the palette turns yellow and orange around.
STARS = ((150, 120, 38), (370, 90, 30), (460, 310, 26), (40, 60, 18), (250, 40, 16))

PALETTE = {
    "night": (12, 24, 72),
    "deep": (22, 50, 128),
    "blue": (38, 92, 178),
    "sky": (70, 140, 210),
    "cyan": (96, 196, 214),
    "pale": (196, 226, 228),
    "yellow": (246, 212, 64),
    "gold": (232, 168, 40),
    "orange": (226, 110, 34),
    "ember": (170, 60, 28),
}


def flow_angle(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Direction of the flow at (x, y): a horizontal wind bent by the vortices."""
    vx = 0.55 + 0.35 * np.sin(y / 37.0) + 0.2 * np.cos(x / 53.0)
    vy = 0.25 * np.sin(x / 41.0 + y / 67.0)
    for cx, cy, r, s in VORTICES:
        dx, dy = x - cx, y - cy
        d2 = dx * dx + dy * dy
        fall = s * np.exp(-d2 / (2.0 * r * r)) * 2.2
        # Tangential around the centre, with a slight inward pull so strokes spiral.
        d = np.sqrt(d2) + 1e-6
        vx += fall * (-dy / d - 0.15 * dx / d)
        vy += fall * (dx / d - 0.15 * dy / d)
    return np.arctan2(vy, vx)


def star_glow(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """0..1: how close (x, y) is to a star, relative to the star's size."""
    glow = np.zeros_like(np.asarray(x, dtype=np.float64))
    for cx, cy, r in STARS:
        d = np.hypot(x - cx, y - cy)
        glow = np.maximum(glow, np.clip(1.6 - d / r, 0.0, 1.0))
    return glow


def stroke_colour(x: float, y: float, rng: np.random.Generator) -> np.ndarray:
    """Yellows and oranges near the stars, blues and cyans elsewhere, lighter near the top."""
    glow = float(star_glow(np.array(x), np.array(y)))
    band = 0.5 + 0.5 * np.sin(x / 29.0 + 1.7 * np.sin(y / 23.0))  # stripes of light and dark
    u = rng.random()
    if glow > 0.65:
        name = "yellow" if u < 0.55 else ("gold" if u < 0.85 else "pale")
    elif glow > 0.0:
        name = "gold" if u < 0.4 else ("orange" if u < 0.7 else "cyan")
    elif y > HEIGHT * 0.82 and u < 0.3:
        name = "ember" if u < 0.12 else "orange"  # a warm ground along the bottom
    elif band > 0.72:
        name = "cyan" if u < 0.5 else ("pale" if u < 0.7 else "sky")
    elif band > 0.35:
        name = "sky" if u < 0.4 else ("blue" if u < 0.85 else "yellow")
    else:
        name = "deep" if u < 0.5 else ("night" if u < 0.8 else "blue")
    jitter = rng.normal(0.0, 12.0, 3)
    return np.clip(np.array(PALETTE[name], dtype=np.float64) + jitter, 0, 255)


def underpainting() -> Image.Image:
    """Large colour regions so the deepest layers see structure, not a flat field."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    t = yy / HEIGHT
    deep = np.array(PALETTE["deep"], dtype=np.float64)
    night = np.array(PALETTE["night"], dtype=np.float64)
    sky = np.array(PALETTE["sky"], dtype=np.float64)
    wave = 0.5 + 0.5 * np.sin(xx / 60.0 + 2.0 * np.sin(yy / 50.0))
    base = night * t[..., None] + deep * (1 - t[..., None])
    base = base * (1 - 0.35 * wave[..., None]) + sky * 0.35 * wave[..., None]
    glow = star_glow(xx, yy)[..., None]
    base = base * (1 - glow) + np.array(PALETTE["gold"], dtype=np.float64) * glow
    return Image.fromarray(base.clip(0, 255).astype(np.uint8), "RGB")


def trace(x: float, y: float, length: float, step: float) -> list[tuple[float, float]]:
    """Follow the flow from (x, y) for `length` pixels; stops at the border."""
    points = [(x, y)]
    for _ in range(max(2, int(length / step))):
        a = float(flow_angle(np.array(x), np.array(y)))
        x, y = x + step * np.cos(a), y + step * np.sin(a)
        if not (-8 <= x <= WIDTH + 8 and -8 <= y <= HEIGHT + 8):
            break
        points.append((x, y))
    return points


def stroke(
    draw: ImageDraw.ImageDraw, pts: list[tuple[float, float]], fill: tuple[int, ...], w: int
) -> None:
    """A line with round ends, as a brush leaves it (PIL's lines end square)."""
    draw.line(pts, fill=fill, width=w, joint="curve")
    r = w / 2
    for px, py in (pts[0], pts[-1]):
        draw.ellipse((px - r, py - r, px + r, py + r), fill=fill)


def paint_pass(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    count: int,
    width: tuple[int, int],
    length: tuple[float, float],
) -> None:
    """`count` strokes of the given width and length ranges, each rim-then-core."""
    for _ in range(count):
        x, y = rng.uniform(-10, WIDTH + 10), rng.uniform(-10, HEIGHT + 10)
        w = int(rng.integers(width[0], width[1] + 1))
        pts = trace(x, y, rng.uniform(*length), step=max(2.0, w * 0.6))
        if len(pts) < 2:
            continue
        colour = stroke_colour(x, y, rng)
        rim = tuple(int(c) for c in colour * 0.45)
        core = tuple(int(c) for c in colour)
        light = tuple(int(c) for c in np.clip(colour * 1.25 + 25, 0, 255))
        stroke(draw, pts, rim, w + 2)
        stroke(draw, pts, core, w)
        if w >= 4:  # a highlight along one side of the thicker strokes: the impasto ridge
            off = [(px - w * 0.2, py - w * 0.2) for px, py in pts]
            draw.line(off, fill=light, width=max(1, w // 3), joint="curve")


def paint() -> Image.Image:
    rng = np.random.default_rng(SEED)
    canvas = underpainting()
    draw = ImageDraw.Draw(canvas)
    paint_pass(draw, rng, 900, (9, 13), (30, 60))  # broad strokes: the big swirls
    paint_pass(draw, rng, 2200, (5, 8), (16, 34))  # the stroke texture itself
    paint_pass(draw, rng, 2600, (2, 4), (8, 18))  # fine dashes and edges
    # A touch of softening so the 1-px rasteriser stair-steps do not dominate conv1_1.
    return canvas.filter(ImageFilter.SMOOTH)


def main() -> None:
    image = paint()
    image.save(OUT, optimize=True)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KiB, {image.width}x{image.height})")


if __name__ == "__main__":
    main()
