"""wfa_auth: authenticate Workflow Automation API calls by Key ID and Key Secret."""
