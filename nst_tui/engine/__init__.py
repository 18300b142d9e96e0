"""The computing core: weights, features, losses, the loop. Never imports the UI."""
