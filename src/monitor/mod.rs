//! Sampling of a server process and the host (CPU, memory, connections on a port).
