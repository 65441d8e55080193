"""splitlm: curate a corpus into semantic domains and train split language models on them."""

__version__ = "0.1.0"
