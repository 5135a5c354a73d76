"""Worker heartbeats: which worker processes are alive, and since when."""
