"""The generative modules: each runs as a Ray actor hosted by the runtime."""
