"""Numbers quoted from elsewhere, each with its source: the one table the report's prose and the sweep cite."""

# The original report's loss curve, first and last epoch, as printed there, units unstated.
ORIGINAL_REPORT_LOSS = (17_900, 10_700)
# Test NLL in nats per image on dynamically binarised Fashion-MNIST, importance sampling with K = 5000: Norouzi,
# Fleet & Norouzi (2020), "Exemplar VAE: Linking Generative Models, Nearest Neighbor Retrieval, and Data
# Augmentation", NeurIPS 2020, arXiv:2004.04795, Table 1 (protocol and what is verified: docs/literature-protocol.md).
GAUSSIAN_VAE_FASHION_MNIST_NLL = 228.70  # the Gaussian-prior VAE baseline (two 300-unit gated layers, z = 40)
