"""The runtime: a compiled router from its artifact alone — matching, delivery, and the event stores (memory, Redis)."""
