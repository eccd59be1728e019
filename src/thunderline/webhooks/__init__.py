"""Webhooks: terminal events (ingested, failed, label match) POSTed as signed CloudEvents."""
