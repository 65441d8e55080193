"""Routing a prefix to a cluster: how sure the router is (calibration), and how that is measured."""
