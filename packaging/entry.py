"""The frozen app's entry point: the same `mask-checker` command line as the installed one."""
import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main())
