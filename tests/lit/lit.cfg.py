# lit configuration for mxc: mxc-opt and filecheck come from the installed package / PyPI.
import os
import sys

import lit.formats

config.name = "mxc"
config.test_format = lit.formats.ShTest()
config.suffixes = [".mlir", ".py"]
config.excludes = ["lit.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.substitutions.append(("%PYTHON", sys.executable))
config.environment["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
config.environment["PYTHONWARNINGS"] = "ignore"
