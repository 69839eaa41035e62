"""Training the project's own models: data sampling, losses, the SRGAN parts, and the loop.

Import what you need from the submodules; ``vidsr.train.loop.train`` is the entry point.
"""
