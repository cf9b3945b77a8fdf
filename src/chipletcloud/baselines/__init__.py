"""GPU and TPU baselines: sourced device and pricing cards (data/devices, data/prices)."""
