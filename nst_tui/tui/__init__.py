"""The Textual dashboard. Nothing here imports torch at import time: runs do, in a worker."""
