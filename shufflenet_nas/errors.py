"""One exception root. The CLI turns these into one-line messages and exit codes."""

import re

_URL_PASSWORD = re.compile(r"(\b[A-Za-z][\w+.-]*://[^:/@\s]*:)\S*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&\s]*", re.IGNORECASE)


def mask_password(text: str) -> str:
    """``text`` with the password of every URL in it (``scheme://user:password@host``) replaced by ``***``."""
    return _QUERY_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))


class ShuffleNetNASError(Exception):
    """A domain error (exit code 1): the input was well-formed but the job cannot be done."""

    exit_code = 1


class UsageError(ShuffleNetNASError):
    """A malformed argument (exit code 2): the message names the value and the accepted forms."""

    exit_code = 2


class DeviceUnavailableError(ShuffleNetNASError):
    """The requested target (GPU, ONNX Runtime) is not available on this machine."""
