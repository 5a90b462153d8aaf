"""Stalled-batch cleanup: pure decision logic, and small hooks for the services it talks to.

The pure modules (`cleanup`, `events`, `messages`) import neither Airflow nor any client
library, so the DAG file can import them at parse time. The hooks live in `hooks` and are
imported inside tasks.
"""
