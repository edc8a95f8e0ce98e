"""Pieces every adapter uses, written once: pacing (back-off, token bucket, Retry-After) and
URLs safe to show. Standard library only; below the adapters, above the pure core."""
