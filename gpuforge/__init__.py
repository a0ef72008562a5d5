"""gpuforge: the lab and CI tooling around the gpuforge.cluster Ansible collection."""

__version__ = "0.1.0"
