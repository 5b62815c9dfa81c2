"""Runnable examples of Bastion used as a library (``uvicorn examples.reports_app:app``)."""
