"""Every limit of the service, defined once, for the service layer, GraphQL and the console."""

from __future__ import annotations

#: A key's name: 1 to 100 characters after trimming.
MAX_NAME_LENGTH = 100
#: A key's lifetime: 1 to 3650 days, or none (never expires).
MAX_LIFETIME_DAYS = 3650
#: The search text of ``apiKeys``.
MAX_SEARCH_LENGTH = 100
#: An email address (RFC 5321's limit).
MAX_EMAIL_LENGTH = 254
#: A page of a connection: 1 to 100 rows, 50 when not given.
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50
#: Live access tokens per key; issuing one more evicts the oldest.
MAX_TOKENS_PER_KEY = 100
#: An organization's name: 1 to 200 characters after trimming.
MAX_ORGANIZATION_NAME_LENGTH = 200
#: A password of a user.
MIN_PASSWORD_LENGTH = 12
#: Networks (CIDR) in one key's address allow-list.
MAX_ALLOWED_CIDRS = 20
#: A regenerated key's old secret stays valid for 0 to 10080 minutes (a week).
MAX_GRACE_PERIOD_MINUTES = 10080
#: An organization's key inactivity limit: 1 to 3650 days, or none.
MAX_INACTIVITY_DAYS = 3650

#: A key's rate limit: 1 to 1,000,000 requests per 1 to 86,400 seconds.
MAX_RATE_LIMIT_REQUESTS = 1_000_000
MAX_RATE_LIMIT_SECONDS = 86_400
#: A key's quota: 1 to 10^9 requests per UTC day or month.
MAX_QUOTA_REQUESTS = 1_000_000_000
#: A usage query: at most 31 days of hours or 400 days of days.
MAX_USAGE_HOURS_DAYS = 31
MAX_USAGE_DAYS = 400
#: The top keys of organizationUsage: 1 to 100.
MAX_USAGE_TOP = 100
