"""`python -m privserve` runs the command-line interface."""

from privserve.cli.main import main

main()
