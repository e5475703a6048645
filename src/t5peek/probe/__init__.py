"""How t5peek runs a model and listens inside it: one decoder step with the cache (stepping.py)."""
