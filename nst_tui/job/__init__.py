"""Jobs: every run is a job of cells (a single run is a job of one).

plan (no torch) -> executor (local, or a cluster) -> the one cell lifecycle ->
events tagged by cell -> recorders and listeners (nst_tui.job.run).
"""
