"""mmindex: deep-learning multimedia indexing and retrieval."""

__version__ = "0.1.0"
