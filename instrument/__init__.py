"""noisepad's instrument: presets, MIDI in, voices and mixer, audio out, offline render, the CLI."""
