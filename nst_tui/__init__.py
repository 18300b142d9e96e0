"""nst-tui: a terminal dashboard and headless runner for Gatys-style neural style transfer."""

__version__ = "0.1.0"
