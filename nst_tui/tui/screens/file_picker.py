"""Pick an image file from a directory tree."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from rich.text import Text, TextType
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Label

from nst_tui.text import visible
from nst_tui.tui.plain import plain

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


class ImageTree(DirectoryTree):
    """Folders and image files only; hidden entries left out."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [
            p
            for p in paths
            if not p.name.startswith(".") and (p.is_dir() or p.suffix.lower() in IMAGE_SUFFIXES)
        ]

    def process_label(self, label: TextType) -> Text:
        # A file name is text: an escape in one is shown (`\x1b`), not sent.
        if isinstance(label, str):
            label = Text(visible(label))
        return super().process_label(label)


class FilePicker(ModalScreen[str | None]):
    """Dismisses with the chosen file's path, or None."""

    AUTO_FOCUS = "#files-tree"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Close"),
        Binding("backspace", "up", "Parent folder"),
    ]

    def __init__(self, title: str, start: Path) -> None:
        super().__init__()
        self.title_text = title
        self.start = start

    def compose(self) -> ComposeResult:
        with Vertical(id="files-body", classes="modal-body"):
            yield Label(plain(self.title_text), classes="modal-title")
            yield Label(plain(self.start), id="files-root", classes="modal-hint")
            yield ImageTree(self.start, id="files-tree")
            yield Label("enter picks · backspace goes up · escape closes", classes="modal-hint")

    @on(DirectoryTree.FileSelected)
    def _picked(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(str(event.path))

    def action_up(self) -> None:
        tree = self.query_one(ImageTree)
        parent = Path(tree.path).resolve().parent
        tree.path = parent
        self.query_one("#files-root", Label).update(plain(parent))

    def action_cancel(self) -> None:
        self.dismiss(None)
