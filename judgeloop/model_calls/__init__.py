"""Every LLM call: which provider a role uses, the limits on each call, how many calls and what they cost."""
