"""The dashboard's panes, one widget per module."""
