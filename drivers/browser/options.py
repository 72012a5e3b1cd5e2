"""A task's browser settings: the Playwright context options a job or task may ask for.

One model serves the coordinator's API (checked at creation, a 422 naming the field), the
`assign` frame and the browser driver, so the three cannot drift. The proxy's password is a
`SecretStr`: `repr`, `str` and the log show it masked; only the wire (`model_dump_json`, which the
coordinator stores and sends in `assign`) and the driver (`playwright_proxy`) read it.
`shown` is what the API answers with: the password replaced by `***`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_serializer,
    model_validator,
)

MASK = "***"
"""What the API shows instead of a proxy password."""
PROFILE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
"""An HTTP token (RFC 9110): what a header name may be."""
PROXY_SCHEMES = ("http", "https", "socks5")
CDP_SCHEMES = ("http", "https", "ws", "wss")


def _url(url: str, schemes: tuple[str, ...]) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port that is not a number or out of range
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"must be a {', '.join(s + '://' for s in schemes)} URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not hold credentials (give username and password apart)")
    if port is None and parts.scheme == "socks5":
        raise ValueError("needs a port")
    return url


def _locale(value: str) -> str:
    # A BCP 47 tag as Chromium takes it: a language, then subtags (en, en-US, zh-Hant-TW).
    if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}", value):
        raise ValueError("must be a BCP 47 language tag such as en-US or fr")
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone such as Europe/Paris or UTC") from None
    return value


def _headers(headers: dict[str, str]) -> dict[str, str]:
    for name, value in headers.items():
        if not HEADER_NAME.match(name):
            raise ValueError(f"{name!r} is not a header name")
        if any(c in value for c in "\r\n\x00"):
            raise ValueError(f"the value of {name} holds a line break or NUL")
    return headers


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Proxy(_Options):
    server: Annotated[str, Field(max_length=2000), AfterValidator(lambda u: _url(u, PROXY_SCHEMES))]
    """e.g. http://proxy.example:3128 or socks5://127.0.0.1:1080."""
    username: str | None = Field(default=None, min_length=1, max_length=500)
    password: SecretStr | None = Field(default=None, max_length=500)

    @field_serializer("password", when_used="json")
    def _reveal(self, password: SecretStr | None) -> str | None:
        # The wire and the coordinator's store need the password itself; repr stays masked.
        return None if password is None else password.get_secret_value()

    @model_validator(mode="after")
    def _password_needs_user(self) -> Proxy:
        if self.password is not None and self.username is None:
            raise ValueError("a password needs a username")
        return self


class Geolocation(_Options):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    accuracy: float = Field(default=0, ge=0, le=100_000, description="Metres.")


class Viewport(_Options):
    width: int = Field(ge=100, le=7680, description="CSS pixels.")
    height: int = Field(ge=100, le=4320, description="CSS pixels.")


class BrowserOptions(_Options):
    """Browser settings of a job (its tasks' default) or of one task (overriding the job's field
    by field). Every field is optional; an empty object asks for nothing."""

    user_agent: str | None = Field(default=None, min_length=1, max_length=1000)
    extra_http_headers: Annotated[dict[str, str], AfterValidator(_headers)] | None = Field(
        default=None, max_length=50, description="Sent with every request of the task's pages."
    )
    locale: Annotated[str, AfterValidator(_locale)] | None = Field(
        default=None, description="navigator.language and Accept-Language, e.g. en-US."
    )
    timezone_id: Annotated[str, AfterValidator(_timezone)] | None = Field(
        default=None, description="An IANA time zone, e.g. Europe/Paris."
    )
    geolocation: Geolocation | None = Field(
        default=None, description="What navigator.geolocation reports (permission granted)."
    )
    viewport: Viewport | None = Field(
        default=None, description="Instead of the slot's viewport (CSS pixels)."
    )
    proxy: Proxy | None = None
    profile: str | None = Field(
        default=None,
        pattern=PROFILE_NAME,
        description="A persistent profile of the job on its host: cookies and localStorage "
        "kept from one task of the job to the next that names it.",
    )
    browser_address: (
        Annotated[str, Field(max_length=2000), AfterValidator(lambda u: _url(u, CDP_SCHEMES))]
        | None
    ) = Field(
        default=None,
        description="Attach to this running Chromium over CDP (e.g. http://127.0.0.1:9222) "
        "instead of the daemon's own.",
    )

    def over(self, base: BrowserOptions | None) -> BrowserOptions:
        """These options over `base` (a job's): each field given here replaces base's."""
        if base is None:
            return self
        return base.model_copy(update={k: getattr(self, k) for k in self.model_fields_set})

    def shown(self) -> dict[str, Any]:
        """As the API shows them: the fields that were given, the proxy password masked."""
        shown: dict[str, Any] = self.model_dump(mode="json", exclude_unset=True)
        if self.proxy is not None and self.proxy.password is not None:
            shown["proxy"]["password"] = MASK
        return shown

    def context_options(self) -> dict[str, Any]:
        """Keyword arguments of Playwright's `new_context` (profile and address are not)."""
        options: dict[str, Any] = {}
        for name in ("user_agent", "extra_http_headers", "locale", "timezone_id"):
            value = getattr(self, name)
            if value is not None:
                options[name] = value
        if self.geolocation is not None:
            options["geolocation"] = self.geolocation.model_dump()
            options["permissions"] = ["geolocation"]
        if self.proxy is not None:
            proxy: dict[str, str] = {"server": self.proxy.server}
            if self.proxy.username is not None:
                proxy["username"] = self.proxy.username
            if self.proxy.password is not None:
                proxy["password"] = self.proxy.password.get_secret_value()
            options["proxy"] = proxy
        return options
