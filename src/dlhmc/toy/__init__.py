"""Toy targets for checking samplers where the answer is known by construction."""
