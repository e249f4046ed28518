"""``python -m endostream`` runs the command line."""

from endostream.cli import console_main

console_main()
