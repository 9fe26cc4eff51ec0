"""Deploy a MedSwarm ledger (same as `medswarm deploy`); see --help."""

import sys

from node.cli import main

if __name__ == "__main__":
    sys.exit(main(["deploy", *sys.argv[1:]]))
