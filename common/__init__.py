"""Shared machinery for the topic folders: see common/README.md for the contract."""
