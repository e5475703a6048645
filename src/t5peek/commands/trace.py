"""t5peek trace (being written)"""

HELP = "(being written)"


def trace_command() -> None:
    raise NotImplementedError
