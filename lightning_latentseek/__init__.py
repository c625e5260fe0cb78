"""lightning-latentseek: test-time latent optimisation of a frozen LLM (LatentSeek, arXiv 2505.13308)."""

__version__ = "0.1.0"
