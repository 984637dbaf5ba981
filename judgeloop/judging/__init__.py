"""The judge: its versions and stored scores, agreement with the experts, alignment with MemAlign, the gate before a promotion, and measurements over time."""
