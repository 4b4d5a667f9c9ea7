"""Tests that new parts (an endpoint, and others) plug in from outside their packages, with no edit to existing code."""
