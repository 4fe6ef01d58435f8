"""What is not the math: how the ops' formulas are cut into blocks and tiles and shared over threads.

The learner's core (tensor, ops, nn, optim, reference) holds the math; a file here applies it faster.
"""
