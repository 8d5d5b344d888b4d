"""Deciding: observe the engine once, then compare desired with observed — no I/O in the planner."""
