"""t5peek generate (being written)"""

HELP = "(being written)"


def generate_command() -> None:
    raise NotImplementedError
