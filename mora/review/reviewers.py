"""Reviewers are people with their own accounts, so every annotation names who decided.

An account is made through the organisation's invite link (Label Studio's own signup, open only with
that link), with a random password the new reviewer is given once and can change. The admin's password
and API token are used, never shown.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

import httpx

from mora.review.push import client_for, server_call
from mora.review.server import Connection, ReviewServerError

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class Reviewer:
    email: str
    password: str
    login_url: str

    def __repr__(self) -> str:  # the password is for the person, not for logs
        return f"Reviewer(email={self.email!r}, login_url={self.login_url!r}, password=***)"


def add_reviewer(conn: Connection, email: str) -> Reviewer:
    """A new account in the admin's organisation; a clear error when the email is malformed or taken."""
    if not EMAIL.match(email):
        raise ReviewServerError(f"'{email}' is not an email address; pass the reviewer's email, e.g. ann@example.org")
    client = client_for(conn)
    if any((u.email or "").lower() == email.lower() for u in server_call("listing users", client.users.list)):
        raise ReviewServerError(f"{email} has an account already; they log in at {conn.url}/user/login/")
    invite = httpx.get(f"{conn.url}/api/invite", headers={"Authorization": f"Token {conn.token}"}, timeout=30)
    if invite.status_code != 200:
        raise ReviewServerError(f"review server refused the invite link (HTTP {invite.status_code})")
    password = secrets.token_urlsafe(12)
    with httpx.Client(base_url=conn.url, follow_redirects=True, timeout=30) as browser:
        form = browser.get(invite.json()["invite_url"].removeprefix(conn.url))
        browser.post(str(form.url), data={"email": email, "password": password,
                                          "csrfmiddlewaretoken": browser.cookies.get("csrftoken", "")},
                     headers={"Referer": str(form.url)})
    if not any((u.email or "").lower() == email.lower() for u in server_call("listing users", client.users.list)):
        raise ReviewServerError(f"Label Studio did not create an account for {email}; see its server.log")
    return Reviewer(email=email, password=password, login_url=f"{conn.url}/user/login/")
