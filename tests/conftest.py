import os

from hypothesis import settings

import tinygrad_cnn.testing.strategies  # noqa: F401  (registers the ci, dev and thorough profiles)

settings.load_profile(os.environ.get("TINYGRAD_CNN_PROFILE", "dev"))
