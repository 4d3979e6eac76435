"""The PostgreSQL server a run talks to: binaries, the throwaway cluster, an existing server."""
