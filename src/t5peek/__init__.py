"""t5peek: see inside Hugging Face encoder-decoder models from the terminal."""

__version__ = "0.1.0"
