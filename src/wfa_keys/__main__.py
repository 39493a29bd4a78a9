"""``python -m wfa_keys``: the same as the ``wfa-keys`` command."""

from wfa_keys.cli import main

raise SystemExit(main())
