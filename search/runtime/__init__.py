"""How a process loads Keras and TensorFlow: the backend, lean and quiet first imports."""
