"""Textual's Footer, without its slow leak over a long session, and with room for the
app's keys in a 120-column terminal.

The Footer recomposes whenever the bindings change (twice per run here). Each
FooterKey it makes data-binds `compact` to the Footer, and Textual drops a bound
child's watcher only when the watched value changes, which `compact` never does:
every key ever shown stays alive (about 2 MB per run, measured by the soak test).
"""

from __future__ import annotations

from textual import events, widgets

# Below this width the "^p palette" item gives its place to the app's own keys; ctrl+p
# still opens the palette (the help screen says so).
PALETTE_MIN_WIDTH = 150


class Footer(widgets.Footer):
    def on_resize(self, event: events.Resize) -> None:
        self.show_command_palette = event.size.width >= PALETTE_MIN_WIDTH

    async def recompose(self) -> None:
        await super().recompose()
        # What Textual itself does on the next change of the watched value.
        for watchers in getattr(self, "__watchers", {}).values():
            watchers[:] = [(node, fn) for node, fn in watchers if not node._closing]
