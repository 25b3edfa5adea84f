"""Dashboard widgets; each renders the latest snapshot it was given and nothing else."""
