"""noisepad's engine: model files, samplers, one-shot generation and per-pad pools.

Owns torch. Has no audio I/O and imports neither `instrument` nor `training`.
"""
