"""The agent's prompt: the registry prompt and its improvement with GEPA, scored by the promoted judge."""
