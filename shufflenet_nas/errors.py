"""The library's exceptions. They speak Python (parameter names and values); ``cli/`` alone turns them into
command-line flags, one-line messages and exit codes.

Convention: a message names a parameter as the Python API spells it followed by ``=`` and its value
(``dtype='fp16' is not supported with target='cpu'; use dtype='fp32'``), or a bare parameter name in
backquotes (```data``` is needed). The CLI rewrites both forms for the parameters it maps to flags.
"""

import re

_URL_PASSWORD = re.compile(r"(\b[A-Za-z][\w+.-]*://[^:/@\s]*:)\S*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&\s]*", re.IGNORECASE)


def mask_password(text: str) -> str:
    """``text`` with the password of every URL in it (``scheme://user:password@host``) replaced by ``***``."""
    return _QUERY_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))


class ShuffleNetNASError(Exception):
    """A domain error: the input was well-formed but the job cannot be done."""


class InvalidArgumentError(ShuffleNetNASError, ValueError):
    """A malformed or out-of-range argument; the message names the parameter, its value and what is accepted."""


class DeviceUnavailableError(ShuffleNetNASError):
    """The requested target (GPU, ONNX Runtime) is not available on this machine."""
