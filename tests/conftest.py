import os
import sys

import matplotlib

matplotlib.use("Agg")  # tests draw figures without a screen

sys.path.insert(0, os.path.dirname(__file__))  # tests import cases.py and oracles.py
