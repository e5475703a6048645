"""t5peek: see inside Hugging Face encoder-decoder models from the terminal, or from Python.

    import t5peek
    model = t5peek.Model("demo")          # a Hub id, a local folder, or the bundled demo
    model.params().total                  # the records the CLI renders, as plain dataclasses

`import t5peek` is light: torch and transformers load only when a method needs weights or the module tree.
"""

__version__ = "0.1.0"

__all__ = ["Model", "T5PeekError", "__version__"]


def __getattr__(name: str):
    # Lazy, so that `t5peek --help` (which imports the package for its version) stays fast.
    if name == "Model":
        from t5peek.api import Model

        return Model
    if name == "T5PeekError":
        from t5peek.errors import T5PeekError

        return T5PeekError
    raise AttributeError(f"module 't5peek' has no attribute {name!r}")
