"""Launch a whole MedSwarm swarm on this machine (same as `medswarm swarm`); see --help."""

import sys

from node.cli import main

if __name__ == "__main__":
    sys.exit(main(["swarm", *sys.argv[1:]]))
