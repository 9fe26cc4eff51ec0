"""Audit a MedSwarm ledger (same as `medswarm audit`); see --help."""

import sys

from node.cli import main

if __name__ == "__main__":
    sys.exit(main(["audit", *sys.argv[1:]]))
