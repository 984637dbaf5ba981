"""The experts' labels: where they label, which labels count, which wait for a re-alignment, and label files."""
