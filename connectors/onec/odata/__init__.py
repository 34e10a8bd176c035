"""Pulling changes from a 1С base's standard OData interface (УТ 11): client, poller, runner."""
