"""`python -m vae ...`: the command line lives in vae/lab/cli.py."""

from vae.lab.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
