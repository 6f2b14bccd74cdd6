from tinygrad_cnn.testing import strategies

# The hypothesis profile named by $TINYGRAD_CNN_PROFILE ("ci" under `make test`; "dev" when unset).
strategies.load_profile(default="dev")
