import os

import matplotlib

matplotlib.use("Agg")  # tests draw figures without a screen

# method="auto" would otherwise measure this machine's constants on its first choice and keep them in the
# user's cache: the suite's choices must not depend on timing. Tests of the measurement switch it on.
os.environ["CONVLAB_AUTO_MEASURE"] = "0"
