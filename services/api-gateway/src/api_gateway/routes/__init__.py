"""HTTP routes, one router per area, all under /api/v1/automation/."""
