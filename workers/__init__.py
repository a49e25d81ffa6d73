"""Process management: GPU-pinned and CPU worker pools, beat, Flower, the whole stack."""
