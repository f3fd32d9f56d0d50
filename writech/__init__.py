"""Writech Analytics: smart-pen learning events in, daily statistics and diagnosis out."""

__version__ = "0.1.0"
