"""The one error hierarchy of segsync.

Every error a user can cause or meet derives from :class:`SegsyncError`; the CLI catches it at
the top, prints one line on stderr and exits with the error's ``exit_code``. Anything else is a
bug and keeps its traceback.

::

    SegsyncError                 exit 1
    ├── ConfigError              exit 2   bad config file, unknown connector, bad option
    ├── PluginError              exit 2   plugin failed to load, hook typo, duplicate connector
    ├── QueryError               exit 2   segment query that does not parse or type-check
    ├── LockedError              exit 3   another run holds the database lock
    ├── HeldError                exit 4   removals held back by a guardrail
    ├── SourceError              exit 1   a source could not be read (a whole file, an API)
    │   └── MissingColumnError            a required column is absent: the file is skipped
    └── ConnectorError           exit 1   talking to an external service
        ├── RetriableError                429, 5xx, timeouts: try again later
        └── FatalError                    401, 403 with a body, bad request: do not retry

    Interrupted                  exit 1   Ctrl-C or SIGTERM (a BaseException, as
                                          KeyboardInterrupt is)
"""

from __future__ import annotations


class SegsyncError(Exception):
    """Base of every error shown to a user as one line."""

    exit_code = 1


class ConfigError(SegsyncError):
    """The configuration (file, environment or command line) is wrong."""

    exit_code = 2

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = problems or [message]
        super().__init__(message)


class PluginError(SegsyncError):
    """A plugin could not be loaded or broke the plugin contract."""

    exit_code = 2


class QueryError(SegsyncError):
    """A segment query is invalid; the message shows the query with a caret under the problem."""

    exit_code = 2

    def __init__(self, message: str, query: str = "", position: int | None = None):
        self.query = query
        self.position = position
        self.reason = message
        if query and position is not None:
            message = f"{message}\n  {query}\n  {' ' * position}^"
        super().__init__(message)


class LockedError(SegsyncError):
    """Another segsync process holds the run lock on this database."""

    exit_code = 3


class HeldError(SegsyncError):
    """Removals exceeded the guardrail and were held; rerun with --allow-large-removals."""

    exit_code = 4


class SourceError(SegsyncError):
    """A source could not be read as a whole."""


class MissingColumnError(SourceError):
    """A file lacks a column its mapping requires; nothing from that file is written."""


class ConnectorError(SegsyncError):
    """An external service answered with an error."""


class RetriableError(ConnectorError):
    """A transient failure: the same request may succeed later.

    ``retry_after`` carries the server's Retry-After in seconds when it sent one.
    """

    def __init__(self, message: str, retry_after: float | None = None):
        self.retry_after = retry_after
        super().__init__(message)


class FatalError(ConnectorError):
    """A failure that repeating the request will not fix (bad credentials, bad request).

    ``status`` is the HTTP status when there was one: a 400/413/422 means the batch's content
    was refused, which the push executor answers by splitting the batch to find the record.
    """

    def __init__(self, message: str, status: int | None = None):
        self.status = status
        super().__init__(message)


class Interrupted(BaseException):
    """The process was told to stop (Ctrl-C, or SIGTERM from a scheduler's timeout).

    A :class:`BaseException`, as :class:`KeyboardInterrupt` is, so that no ``except
    Exception`` on the way (a retry loop, a per-record error handler) mistakes it for a
    failure and carries on.
    """

    exit_code = 1

    def __init__(self, message: str, *, by_person: bool):
        super().__init__(message)
        #: Ctrl-C (someone is watching) rather than SIGTERM (a scheduler gave up on the run).
        self.by_person = by_person
