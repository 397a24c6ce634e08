"""Intake: partner agencies submit consultations (相談) about a household."""
