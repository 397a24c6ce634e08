"""Metrics: the outcome indicators (成果把握項目) per municipality and fiscal year."""
