"""Hardware-in-the-loop: deploy to a flight-like board and measure it there. No TensorFlow."""
