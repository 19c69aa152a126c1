"""Tests of search spaces, validation runs and the dashboard."""
