"""Webhook checks over HTTP: the adapter behind `canary.webhooks.port.WebhookCaller`."""
