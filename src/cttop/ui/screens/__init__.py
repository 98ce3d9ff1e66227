"""Screens opened over the main view: help, flow detail lives with the panels, confirmation for actions."""
