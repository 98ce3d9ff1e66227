"""The single-file binary's entry point (scripts/build-binary.sh): cttop's CLI.

Also ``cttop -m cttop.lab.MODULE ...``, as ``python -m``: the lab starts its traffic generators with
``sys.executable -m``, and in the binary sys.executable is the binary itself. Only the lab's modules: the
binary is not a general Python interpreter.
"""

import runpy
import sys

if len(sys.argv) > 2 and sys.argv[1] == "-m" and sys.argv[2].startswith("cttop.lab."):
    module = sys.argv[2]
    sys.argv = [module, *sys.argv[3:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
else:
    from cttop.cli import main

    main()
