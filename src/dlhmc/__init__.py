"""dlhmc: learned (L2HMC / DLHMC) and plain HMC samplers for lattice gauge theory."""

__version__ = "0.1.0"
