"""Offline utilities and the command line."""
