"""Heap evidence: the streaming memray capture, its suspects, and the bundle's collectors."""
