"""Monitoring: reference statistics captured at promotion (and, later, drift against them)."""
