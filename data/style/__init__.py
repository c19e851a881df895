"""Photos and paintings for neural style transfer."""
