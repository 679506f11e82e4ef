"""Research variants of the original report's VAE, each plugged into one seam of the core."""
