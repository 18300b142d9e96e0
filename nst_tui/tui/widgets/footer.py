"""Textual's Footer, without its slow leak over a long session, and keeping the most
useful keys when the terminal is too narrow for all of them (80 columns cut "f1 He").

The Footer recomposes whenever the bindings change (twice per run here). Each
FooterKey it makes data-binds `compact` to the Footer, and Textual drops a bound
child's watcher only when the watched value changes, which `compact` never does:
every key ever shown stays alive (about 2 MB per run, measured by the soak test).
"""

from __future__ import annotations

from textual import events, widgets
from textual.widget import Widget
from textual.widgets._footer import FooterKey, FooterLabel, KeyGroup

# Below this width the "^p palette" item gives its place to the app's own keys; ctrl+p
# still opens the palette (the help screen says so).
PALETTE_MIN_WIDTH = 150
# Who keeps a place longest when the footer is too narrow, by action: first in, last
# out. Other keys go before these, and the form's grouped layer keys (1..5, !..%) first:
# f3 and the help list them too.
KEEP = (
    *("run", "cancel_run", "help", "quit", "focus_layers", "pick_preset", "save_preset"),
    *("focus_runs", "toggle_sweep", "edit_sweep", "toggle_layer_losses", "reset"),
)


class Footer(widgets.Footer):
    def on_resize(self, event: events.Resize) -> None:
        self.show_command_palette = event.size.width >= PALETTE_MIN_WIDTH
        self.fit(event.size.width)

    async def recompose(self) -> None:
        await super().recompose()
        self.fit(self.size.width)
        # What Textual itself does on the next change of the watched value.
        for watchers in getattr(self, "__watchers", {}).values():
            watchers[:] = [(node, fn) for node, fn in watchers if not node._closing]

    def fit(self, width: int) -> None:
        """Show the items that fit in `width` columns, the least useful left out first."""
        if width <= 0:
            return
        units: list[list[Widget]] = []  # a key, or a key group with its label after it
        for child in self.children:
            if isinstance(child, FooterLabel) and units and isinstance(units[-1][0], KeyGroup):
                units[-1].append(child)
            elif isinstance(child, (FooterKey, KeyGroup, FooterLabel)):
                units.append([child])
        used, shown = 0, []
        for unit in sorted(units, key=lambda u: rank(u[0])):  # stable: footer order on ties
            cost = sum(cells(item) + 1 for item in unit)  # each with the gap after it
            if used + cost <= width + 1:
                used += cost
                shown.append(unit)
        for unit in units:
            for item in unit:
                item.display = unit in shown


def rank(item: Widget) -> int:
    if isinstance(item, FooterKey):
        return KEEP.index(item.action) if item.action in KEEP else len(KEEP)
    return len(KEEP) + 1  # a layer key group (and its label)


def cells(item: Widget) -> int:
    """The columns an item takes in the compact footer: key, space, description."""
    if isinstance(item, FooterKey):
        return len(item.key_display) + (len(item.description) + 1 if item.description else 0)
    if isinstance(item, KeyGroup):
        return sum(cells(k) + 1 for k in item.query(FooterKey)) - 1
    return len(str(item.content)) if isinstance(item, FooterLabel) else 0
