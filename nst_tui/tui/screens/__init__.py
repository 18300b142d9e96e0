"""Modal screens: help, preset picker, preset saving, file picking."""
