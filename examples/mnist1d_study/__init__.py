"""MNIST-1D fine-tuning study: plain vs seinject (identity init) vs the paper's random-init SE block."""
