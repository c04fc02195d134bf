"""Lightning callbacks that observe training: theory probes and parameter snapshots."""
