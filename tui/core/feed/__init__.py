"""Gathers core state (journal, log, server, GPU, or a demo recording) into updates for the dashboard."""
