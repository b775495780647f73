"""Integrations with the tools where experts already work. Each kind speaks one tool's API (``send`` for work
going out, ``receive`` for decisions coming in); the database side is casework.services.integrations and
casework.services.integration_deliveries, and casework.subscribers.integrations turns events into deliveries."""

from __future__ import annotations

from casework.integrations.base import Kind


def kinds() -> dict[str, Kind]:
    from casework.integrations.azure_devops import AzureDevOps
    from casework.integrations.jira import Jira
    from casework.integrations.servicenow import ServiceNow
    from casework.integrations.slack import Slack
    from casework.integrations.teams import Teams
    from casework.integrations.zendesk import Zendesk

    found: list[Kind] = [Slack(), Teams(), Jira(), AzureDevOps(), ServiceNow(), Zendesk()]
    return {kind.name: kind for kind in found}
