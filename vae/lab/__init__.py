"""The reproduction machinery: runs on disk, checkpoints, locks and staged writes, the report, the sweep, the
literature scoring, and the command line. It builds on the core (vae/*.py) and the research variants
(vae/research/); nothing below imports it."""
