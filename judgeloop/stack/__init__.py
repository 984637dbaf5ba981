"""Where the loop runs: the MLflow store this process connects to, the local servers and the one running stack of a state folder, who may reach them."""
