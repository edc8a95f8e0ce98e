"""Notifications: Slack, Microsoft Teams and a generic JSON webhook, delivered off the reconcile
path by `Dispatcher` (retries with backoff, a rate limit per receiver, a bounded queue)."""
