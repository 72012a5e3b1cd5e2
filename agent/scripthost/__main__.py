"""`python -m agent.scripthost --fd N`: see agent/scripthost/host.py."""

import sys

from agent.scripthost.host import main

main(sys.argv[1:])
