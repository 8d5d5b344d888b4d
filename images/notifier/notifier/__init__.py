"""The notifier: ops alerts from Alertmanager and the stack's trade events to the trader's Apprise URLs."""
