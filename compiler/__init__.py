"""The compiler: checking passes over the resolved project, dispatch tables, the artifact, the reference interpreter."""
