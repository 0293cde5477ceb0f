"""A node: the processes (master, workers, admin listener) that join the edge and the
control plane, and each worker's loop that applies the store's changes to its edge."""
