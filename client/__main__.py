"""``python -m client``: the same command line as ``vru``."""
from .cli import main

main()
