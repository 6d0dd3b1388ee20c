"""Label Studio serves a local file only when it is what mora wrote there: checked at every request.

Label Studio's local-files view opens the requested path as it is and follows symbolic links, so a
link planted in the media folder while the server runs (to the admin credentials, to /etc/passwd)
would be served to any reviewer. This middleware opens the requested path itself first, one component at
a time from the document root, without following a link (``O_NOFOLLOW``), and requires a regular file
with no second name (a hard link) owned by the server's user: what mora writes there. Then Label
Studio's view authorises and answers, and its answer stands only if the file it opened is that very
file (same device and inode); otherwise it is a 404. A link swapped in between the two opens gives two
different files, and a refusal.
"""

from __future__ import annotations

import os
import posixpath
import stat

PREFIX = "/data/local-files"


def open_served(root: str, relative: str) -> int | None:
    """A read-only descriptor of ``root/relative`` when no component is a link and it is a regular file
    with one name, owned by this user; None otherwise (missing, a link, a folder, a pipe, ``..``)."""
    parts = posixpath.normpath(relative).lstrip("/").split("/")  # the path Label Studio's view reads
    if any(part in ("", ".", "..") for part in parts):
        return None
    nofollow = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        for part in parts[:-1]:
            inner = os.open(part, nofollow | os.O_DIRECTORY, dir_fd=folder)
            os.close(folder)
            folder = inner
        fd = os.open(parts[-1], nofollow | os.O_NONBLOCK, dir_fd=folder)  # a pipe must not block the server
    except OSError:
        return None
    finally:
        os.close(folder)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1 or info.st_uid != os.geteuid():
        os.close(fd)
        return None
    return fd


def _streamed(response):
    """The file object a file response streams (Label Studio's RangedFileResponse, or Django's)."""
    ranged = getattr(response, "ranged_file", None)
    return getattr(ranged, "f", None) or getattr(response, "file_to_stream", None)


def _same_file(handle, fd: int) -> bool:
    try:
        served, expected = os.fstat(handle.fileno()), os.fstat(fd)
    except (AttributeError, OSError, ValueError):
        return False
    return (served.st_dev, served.st_ino) == (expected.st_dev, expected.st_ino)


class ServeOnlyRegularFiles:
    """Django middleware over ``/data/local-files/``: see the module's docstring."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith(PREFIX):
            return self.get_response(request)
        from django.conf import settings
        from django.http import HttpResponseNotFound

        # first, so that the view never opens what is no regular file (a pipe would hold it for good)
        fd = open_served(settings.LOCAL_FILES_DOCUMENT_ROOT, request.GET.get("d", ""))
        if fd is None:
            return HttpResponseNotFound()
        try:
            response = self.get_response(request)
            if response.status_code in (200, 206) and not _same_file(_streamed(response), fd):
                response.close()  # the view opened another file than the one reached without links
                return HttpResponseNotFound()
            return response
        finally:
            os.close(fd)
