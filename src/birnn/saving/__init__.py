"""Config serialization and Keras-format `.keras` / `.weights.h5` files."""
