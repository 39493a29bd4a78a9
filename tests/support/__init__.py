"""Shared helpers and fakes of the test suite, in one place (imported as ``support.*``).

- :mod:`support.keys`: a counting verifier and store, an inner app and clients for the middleware.
- :mod:`support.gql`: a GraphQL client over ``httpx2`` and the common operations.
- :mod:`support.serving`: real ``wfa-keys serve`` processes.
- :mod:`support.tcp_proxy`: a TCP proxy that can cut a database away.
- :mod:`support.clock`: clocks the tests move by hand.
- :mod:`support.settings`: settings with argon2 at its cheapest.
"""
