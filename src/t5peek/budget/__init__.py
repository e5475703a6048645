"""`t5peek budget`: memory and FLOPs of generate() and of a training step, from config.json and headers alone."""
