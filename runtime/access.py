"""Who may do what on NATS: one operator; the services' account, an account per
organisation; a user per service and per credential.

NATS's decentralised auth ("operator mode"): the server trusts an operator key; the
operator signs the ``ALONGSIDE`` account (JetStream on, the services' users), an
``ORG_<org>`` account per organisation (its credentials, importing only its commands, its
feed's pulls and its acks: docs/decisions/0003) and the system account; each account signs
its users, each a JWT with its own publish and subscribe permissions. Nothing
about a user is configured in the server, so a credential is issued without touching it
and revoked by pushing a re-signed account to the running server (which drops the
revoked user's connections at once). The reasons for this shape, and the permissions of
each kind of user, are in docs/decisions/0003 and 0023.

Keys live in an auth folder: ``alongside up`` makes one in its state folder; a clustered
deployment makes one with ``alongside auth init`` and keeps it with the operator.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import nkeys

from contracts import subjects
from contracts.catalogue import COMMANDS, INTEGRATION_COMMANDS
from runtime import topology
from runtime.vault import load_master_key

ACCOUNT_NAME = "ALONGSIDE"
ADMIN = "admin"
SYSTEM_USER = "system"

_JWT_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
_UNLIMITED = {
    "subs": -1,
    "data": -1,
    "payload": -1,
    "imports": -1,
    "exports": -1,
    "wildcards": True,
    "conn": -1,
    "leaf": -1,
}
_JETSTREAM = {"mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}


class AccessError(ValueError):
    """Credentials that cannot be made or used, said in one line."""


@dataclass(frozen=True)
class Permissions:
    """A user's permissions: subjects it may publish to and subscribe to. (None answers
    "any reply subject it is asked to", NATS's ``allow_responses``: a request may name any
    subject as its reply, a bucket's or an event's among them.)"""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]

    def claims(self) -> dict[str, object]:
        return {"pub": {"allow": list(self.publish)}, "sub": {"allow": list(self.subscribe)}}


EVERYTHING = Permissions(publish=(">",), subscribe=(">",))


def _consumer_reader(stream: str, durable: str) -> tuple[str, ...]:
    """Read a stream through one durable pull consumer the operator made: fetch and ack,
    nothing else. Making consumers is not allowed: a consumer's maker chooses where a push
    consumer delivers, even to subjects the maker may not publish to (nats-server issue
    8274), so a reader could aim its events at command subjects."""
    # (Not even its consumer's information: JetStream answers that only to its own account's
    # users, and a reader's credential is in its organisation's account: decision 0003.)
    return (f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}", f"$JS.ACK.{stream}.{durable}.>")


def _stream_reader(stream: str) -> tuple[str, ...]:
    """Read a stream through consumers the user makes, names and deletes: pull or push,
    durable or ephemeral, acked; never purge, delete or write it. (Services' and the
    console's own, never an outside credential's: see ``_consumer_reader``.)"""
    api = "$JS.API"
    return (
        f"{api}.STREAM.INFO.{stream}",
        f"{api}.CONSUMER.CREATE.{stream}",
        f"{api}.CONSUMER.CREATE.{stream}.>",
        f"{api}.CONSUMER.DURABLE.CREATE.{stream}.*",
        f"{api}.CONSUMER.INFO.{stream}.*",
        f"{api}.CONSUMER.DELETE.{stream}.*",
        f"{api}.CONSUMER.NAMES.{stream}",
        f"{api}.CONSUMER.LIST.{stream}",
        f"{api}.CONSUMER.MSG.NEXT.{stream}.*",
        f"$JS.ACK.{stream}.>",
        f"$JS.FC.{stream}.>",
    )


# The kinds of an organisation's credential, each allowed only its job:
#   subscriber:  its organisation's event feed, through the durable consumer the operator made
#                for it (named as the credential), and nothing else;
#   integration: that feed, and the organisation's intake commands
#                (``catalogue.INTEGRATION_COMMANDS``): no view, export or erasure;
#   console:     the console's own, one per organisation: every command of the organisation,
#                the sensitive reads among them, which the console gives only behind its
#                roles and its access log. It reads no feed: the console service's own
#                credential reads every organisation's stream for its pages.
CredentialKind = Literal["subscriber", "integration", "console"]


def org_permissions(org: str, kind: CredentialKind, name: str) -> Permissions:
    """An organisation's credential of ``kind`` called ``name``: no other organisation's
    subjects, no bucket, no event publishing, no dead letters; replies on its own inbox,
    commands (if any) under its own name, which is how services know who sent them."""
    stream = subjects.org_events_stream(org)
    if kind == "console":  # (its read model reads with the console's own credential)
        publish: tuple[str, ...] = (subjects.command(org, "*", "*", subjects.CONSOLE),)
    else:
        feed = _consumer_reader(stream, name)
        intake = tuple(
            subjects.command(org, COMMANDS[c].service, c, name) for c in INTEGRATION_COMMANDS
        )
        publish = (*intake, *feed) if kind == "integration" else feed
    return Permissions(publish=publish, subscribe=(f"{subjects.org_inbox(org, name)}.>",))


# Names an organisation's credential may not take: they are the senders the server vouches
# for as the services, the console and the operator (``subjects.sender_of``), and those dead
# letters are kept under when they come from no credential (an event, a subject unread).
RESERVED_NAMES = frozenset(
    {
        "intake",
        "rules",
        "matching",
        "scheduling",
        "notifications",
        subjects.CONSOLE,
        subjects.OPERATOR,
        subjects.EVENTS_SENDER,
        "unknown",
    }
)


def credential_name(kind: CredentialKind, name: str | None) -> str:
    """The name a credential of ``kind`` takes: the console's is always ``console``; any
    other's is the one asked for, if it is none of ``RESERVED_NAMES``."""
    if kind == "console":
        if name not in (None, subjects.CONSOLE):
            raise AccessError(f"the console's credential is always named {subjects.CONSOLE!r}")
        return subjects.CONSOLE
    if name is None:
        raise AccessError(f"a {kind} credential needs a name (--name), e.g. billing-feed")
    if name in RESERVED_NAMES:
        raise AccessError(
            f"{name!r} is reserved (the services, the console and the operator "
            "send under it); choose another name"
        )
    return name


@dataclass(frozen=True)
class Needs:
    """What one service touches: the buckets it reads and writes, its durable consumer on
    the events, the commands it sends other services, and what else it publishes."""

    buckets: tuple[str, ...]
    reads: tuple[str, ...] = ()  # buckets it may read, and never write
    consumer: str | None = None
    asks: tuple[str, ...] = ()
    answers: bool = True
    publishes: tuple[str, ...] = ()
    api: tuple[str, ...] = ()


_COMMON = (topology.REGISTRY_BUCKET, topology.REPLIES_BUCKET)
# Reading people's data keys (runtime/vault.py): every service that reads their records.
_READ_KEYS = (f"$JS.API.DIRECT.GET.{topology.KEYS_STREAM}.>",)
SERVICE_NEEDS: dict[str, Needs] = {
    "intake": Needs(
        buckets=(*_COMMON, topology.SUPPORTERS_BUCKET, topology.CASES_BUCKET),
        # Read only: what other services hold about a person, for ExportPersonData; and
        # the organisation's time zone (scheduling's settings), for the date of evidence.
        reads=(
            topology.ORGANISATIONS_BUCKET,
            topology.MATCHES_BUCKET,
            topology.SCHEDULES_BUCKET,
            topology.SUPERVISION_BUCKET,
            topology.CASELOADS_BUCKET,
            topology.DECISIONS_BUCKET,
        ),
        # It seals what it keeps, making a person's key the first time, and erases people
        # by deleting their key.
        publishes=(subjects.person_keys(),),
        # and its sweep lists the keys of days' dead letters, to erase those expired.
        api=(
            *_READ_KEYS,
            f"$JS.API.STREAM.MSG.DELETE.{topology.KEYS_STREAM}",
            f"$JS.API.STREAM.INFO.{topology.KEYS_STREAM}",
            # The decision log's entries about a person, for ExportPersonData.
            *_stream_reader(topology.DECISION_LOG_STREAM),
        ),
    ),
    "rules": Needs(
        buckets=(
            *_COMMON,
            topology.DECISIONS_BUCKET,
            topology.SUPPORTERS_BUCKET,
            topology.CASES_BUCKET,
            topology.CASELOADS_BUCKET,
            topology.ORGANISATIONS_BUCKET,
            topology.RULES_BUCKET,
        ),
        consumer=topology.RULES_CONSUMER.durable,
        # It seals the reasons of a decision with the subject's key, made if need be.
        publishes=(subjects.decision_logs(), subjects.person_keys()),
        api=_READ_KEYS,
    ),
    "matching": Needs(
        buckets=(
            *_COMMON,
            topology.SUPPORTERS_BUCKET,
            topology.DECISIONS_BUCKET,
            topology.CASES_BUCKET,
            topology.CASELOADS_BUCKET,
            topology.MATCHES_BUCKET,
        ),
        consumer=topology.MATCHING_CONSUMER.durable,
        asks=("NameSupportPerson",),
        publishes=(subjects.person_keys(),),  # it seals explanations, as rules do reasons
        api=_READ_KEYS,
    ),
    "scheduling": Needs(
        buckets=(
            *_COMMON,
            topology.ORGANISATIONS_BUCKET,
            topology.SCHEDULES_BUCKET,
            topology.SUPERVISION_BUCKET,
            topology.GROUPS_BUCKET,
            topology.SUPPORTERS_BUCKET,
            topology.CASES_BUCKET,
            topology.DECISIONS_BUCKET,
        ),
        consumer=topology.SCHEDULING_CONSUMER.durable,
        asks=("EvaluateRules", "RecordVettingEvidence"),
        # Reminders are message schedules in the events stream; a cancelled one is replaced
        # by a message without a schedule, so nothing here may purge or delete events.
        publishes=(subjects.schedules(), subjects.person_keys()),  # and it seals notes
        api=_READ_KEYS,
    ),
    "notifications": Needs(
        buckets=(
            *_COMMON,
            topology.DELIVERIES_BUCKET,
            topology.CONTACTS_BUCKET,
            topology.LINKS_BUCKET,
            topology.CHANNELS_BUCKET,
        ),
        # People's contact details (sealed, read when a message is sent) and what a message
        # or a person's page says: proposals, sessions, consent, the organisation's zone.
        reads=(
            topology.CASES_BUCKET,
            topology.SUPPORTERS_BUCKET,
            topology.MATCHES_BUCKET,
            topology.SCHEDULES_BUCKET,
            topology.ORGANISATIONS_BUCKET,
            topology.DECISIONS_BUCKET,
            topology.CASELOADS_BUCKET,
        ),
        consumer=topology.NOTIFICATIONS_CONSUMER.durable,
        api=_READ_KEYS,
    ),
    # The console reads who may sign in; what it sends, it sends as each organisation, with
    # that organisation's own credential (``services/console/orgs.py``).
    "console": Needs(
        # and its sessions, held so that signing out ends them (services/console/sessions.py)
        buckets=(topology.CONSOLE_ACCOUNTS_BUCKET, topology.CONSOLE_SESSIONS_BUCKET),
        # People's pages find a link by its hash before they know its organisation; a
        # record's page shows how its person may be contacted.
        reads=(topology.LINKS_BUCKET, topology.CONTACTS_BUCKET),
        answers=False,
        # Its read model: each organisation's events stream, through consumers of its own
        # (the organisations' accounts make none: docs/decisions/0003). Stream names are
        # whole tokens, so this is every stream's; the console reads only EVENTS-<org>.
        api=_stream_reader("*"),
    ),
}


def _bucket(bucket: str) -> tuple[str, ...]:
    """Read, write and watch a KV bucket. (Kept short: a user's JWT travels in its CONNECT
    line, which nats-server caps at 4 KiB by default.)"""
    stream, api = f"KV_{bucket}", "$JS.API"
    return (
        f"$KV.{bucket}.>",
        f"{api}.DIRECT.GET.{stream}.>",
        f"{api}.STREAM.INFO.{stream}",
        f"{api}.STREAM.MSG.GET.{stream}",
        f"{api}.CONSUMER.CREATE.{stream}",
        f"{api}.CONSUMER.*.{stream}.>",
        f"$JS.FC.{stream}.>",
    )


def service_permissions(service: str) -> Permissions:
    """A service's own credential, allowed only what it needs (``SERVICE_NEEDS``)."""
    needs = SERVICE_NEEDS[service]
    publish: list[str] = [
        "$JS.API.INFO",
        subjects.events(),
        subjects.dead_letters_of(service),
        *needs.publishes,
        *needs.api,
    ]
    for bucket in needs.buckets:
        publish.extend(_bucket(bucket))
    for bucket in needs.reads:
        stream = f"KV_{bucket}"
        publish += [
            f"$JS.API.STREAM.INFO.{stream}",
            f"$JS.API.STREAM.MSG.GET.{stream}",
            f"$JS.API.DIRECT.GET.{stream}.>",
        ]
    if needs.consumer is not None:
        api, stream = "$JS.API", topology.EVENTS_STREAM
        publish += [
            f"{api}.CONSUMER.INFO.{stream}.{needs.consumer}",
            f"{api}.CONSUMER.MSG.NEXT.{stream}.{needs.consumer}",
            f"$JS.ACK.{stream}.{needs.consumer}.>",
        ]
    for asked in needs.asks:  # under its own name (``subjects.sender_of``)
        publish.append(
            subjects.commands_of(COMMANDS[asked].service, command_type=asked, sender=service)
        )
    subscribe = [f"{subjects.service_inbox(service)}.>"]
    if needs.answers:
        # Answers go to inboxes only, never to whatever reply subject a request names (NATS
        # checks no reply subject; ``allow_responses`` would let it write into a bucket);
        # ``commands.answerable`` keeps each to its sender's own.
        publish += ["_INBOX.>", "_INBOX_org.>", "_INBOX_svc.>", "_R_.>"]
        subscribe.append(subjects.commands_of(service))
        # its own readiness probe, and the commands it gives itself (intake's retention)
        publish.append(subjects.commands_of(service, sender=service))
    return Permissions(publish=tuple(publish), subscribe=tuple(subscribe))


# --- keys and JWTs ---------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_key(prefix: int) -> nkeys.KeyPair:
    return nkeys.from_seed(nkeys.encode_seed(os.urandom(32), prefix))


def public(key: nkeys.KeyPair) -> str:
    return str(key.public_key.decode())


def _jwt(
    issuer: nkeys.KeyPair, subject: str, name: str, issued_at: int, nats: Mapping[str, object]
) -> str:
    """A NATS JWT (version 2), signed with the issuer's nkey."""
    claims: dict[str, object] = {
        "iat": issued_at,
        "iss": public(issuer),
        "name": name,
        "sub": subject,
        "nats": {**nats, "version": 2},
    }
    digest = hashlib.sha512(json.dumps(claims, sort_keys=True).encode()).digest()
    claims["jti"] = base64.b32encode(digest[:32]).decode().rstrip("=")
    signed = f"{_b64(json.dumps(_JWT_HEADER).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signed}.{_b64(issuer.sign(signed.encode()))}"


def claims_of(token: str) -> dict[str, object]:
    """The claims of a JWT, unverified: for reading what a credentials file is for."""
    try:
        claims = json.loads(_unb64(token.split(".")[1]))
    except (IndexError, ValueError) as error:
        raise AccessError(f"not a NATS JWT: {error}") from None
    if not isinstance(claims, dict):
        raise AccessError("not a NATS JWT: claims are not an object")
    return claims


def credentials_text(user_jwt: str, seed: bytes) -> str:
    """The ``.creds`` format every NATS client reads (nats-py ``user_credentials``)."""
    return (
        f"-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{seed.decode()}\n------END USER NKEY SEED------\n"
    )


def user_jwt_of(credentials: str) -> str:
    lines = credentials.splitlines()
    try:
        return lines[lines.index("-----BEGIN NATS USER JWT-----") + 1].strip()
    except (ValueError, IndexError):
        raise AccessError("not a NATS credentials file (no user JWT in it)") from None


def org_user(org: str, kind: CredentialKind, name: str) -> str:
    """The user name of an organisation's credential, which says whose it is and its kind."""
    return f"org:{org}:{kind}:{name}"


def service_user(service: str) -> str:
    return f"service:{service}"


@dataclass(frozen=True)
class Principal:
    """Who a credential is to NATS: where its replies arrive (the inbox prefix its
    permissions allow, and no one else's do), the sender it sends commands as, and, for an
    organisation's, its kind (None if issued before kinds)."""

    inbox_prefix: str
    sender: str
    kind: str | None = None


OPERATOR_PRINCIPAL = Principal("_INBOX", subjects.OPERATOR)


def principal(credentials: Path | None) -> Principal:
    """The principal a ``.creds`` file stands for (the operator's without one)."""
    if credentials is None:
        return OPERATOR_PRINCIPAL
    try:
        text = credentials.read_text()
    except OSError as error:
        raise AccessError(f"cannot read credentials {credentials}: {error.strerror}") from None
    kind, _, rest = str(claims_of(user_jwt_of(text)).get("name", "")).partition(":")
    if kind == "org":
        # org:<org>:<kind>:<name>; before kinds, org:<org>:<name> (whose inbox permission,
        # the organisation's whole prefix, holds this one too)
        org, *middle, name = rest.split(":")
        return Principal(subjects.org_inbox(org, name), name, middle[0] if middle else None)
    if kind == "service":
        return Principal(subjects.service_inbox(rest), rest)
    return OPERATOR_PRINCIPAL


@dataclass(frozen=True)
class Issued:
    """A user credential just made: the ``.creds`` text and the user's public key."""

    text: str
    public_key: str
    issued_at: int


class AuthDir:
    """The operator's keys, the server's trust configuration and the services' credentials.

    ``operator.nk``, ``system.nk`` and ``account.nk`` are seeds (mode 0600); ``auth.conf``
    is included by the nats-server configuration; ``creds/`` holds ``admin.creds``,
    ``system.creds`` and one per service.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def conf(self) -> Path:
        return self.path / "auth.conf"

    def credentials(self, user: str) -> Path:
        return self.path / "creds" / f"{user}.creds"

    def exists(self) -> bool:
        return self.conf.exists()

    def _seed(self, name: str) -> nkeys.KeyPair:
        try:
            return nkeys.from_seed((self.path / f"{name}.nk").read_bytes().strip())
        except FileNotFoundError:
            raise AccessError(f"no {name} key in {self.path}: run `alongside auth init`") from None

    def _org_seed(self, org: str) -> nkeys.KeyPair:
        """The key of ``org``'s own account, made the first time it is needed."""
        path = self.path / "orgs" / f"{org}.nk"
        if not path.exists():
            path.parent.mkdir(mode=0o700, exist_ok=True)
            _write_secret(path, new_key(nkeys.PREFIX_BYTE_ACCOUNT).seed)
        return nkeys.from_seed(path.read_bytes().strip())

    def org_account_key(self, org: str) -> str:
        return public(self._org_seed(org))

    def org_account_jwt(self, org: str, revocations: Mapping[str, int], now: int) -> str:
        """``org``'s own account, as the operator signs it: no JetStream, no stream or bucket
        of its own, and importing from ``ALONGSIDE`` only its commands and its feed's reads
        (``ORG_IMPORTS``). Its users' reply subjects live here, so nothing a reply names can
        reach ours: a service import answers through a reply the server maps back."""
        stream = subjects.org_events_stream(org)
        imports = [
            {
                "name": name,
                "subject": subject.format(org=org, stream=stream),
                "account": self.account_key,
                "type": "service",
            }
            for name, subject in ORG_IMPORTS
        ]
        nats: dict[str, object] = {"type": "account", "limits": _UNLIMITED, "imports": imports}
        if revocations:
            nats["revocations"] = dict(revocations)
        return _jwt(self._seed("operator"), self.org_account_key(org), f"ORG_{org}", now, nats)

    @property
    def account_key(self) -> str:
        return public(self._seed("account"))

    @classmethod
    def init(cls, path: Path, services: Iterable[str], now: int) -> AuthDir:
        """Make the keys, the server's trust configuration and every built-in credential.
        Refuses to overwrite an existing folder: its keys are what the server trusts."""
        auth = cls(path)
        if auth.exists():
            raise AccessError(f"{path} already holds keys; keep them, or remove it first")
        (path / "creds").mkdir(parents=True, exist_ok=True)
        path.chmod(0o700)
        # The deployment's master key for people's data (runtime/vault.py), kept with the
        # operator's keys and given to every service process.
        load_master_key(path / "master.key", create=True)
        keys = {
            "operator": new_key(nkeys.PREFIX_BYTE_OPERATOR),
            "system": new_key(nkeys.PREFIX_BYTE_ACCOUNT),
            "account": new_key(nkeys.PREFIX_BYTE_ACCOUNT),
        }
        for name, key in keys.items():
            _write_secret(path / f"{name}.nk", key.seed)
        operator, system = keys["operator"], keys["system"]
        operator_jwt = _jwt(
            operator,
            public(operator),
            "alongside",
            now,
            {"type": "operator", "system_account": public(system)},
        )
        system_jwt = _jwt(
            operator, public(system), "SYS", now, {"type": "account", "limits": _UNLIMITED}
        )
        # The trusted keys, and the two accounts as they start; a resolver folder per node
        # keeps later versions (revocations) pushed to it.
        auth.conf.write_text(
            f"operator: {operator_jwt}\n"
            f"system_account: {public(system)}\n"
            "resolver_preload: {\n"
            f"  {public(system)}: {system_jwt}\n"
            f"  {public(keys['account'])}: {auth.account_jwt({}, now)}\n"
            "}\n"
        )
        auth._write_user(ADMIN, auth.issue(ADMIN, EVERYTHING, now))
        system_user = new_key(nkeys.PREFIX_BYTE_USER)
        token = _jwt(
            system,
            public(system_user),
            SYSTEM_USER,
            now,
            {"type": "user", **_USER_LIMITS, **EVERYTHING.claims()},
        )
        _write_secret(
            auth.credentials(SYSTEM_USER), credentials_text(token, system_user.seed).encode()
        )
        auth.issue_services(services, now)
        return auth

    def issue_services(self, services: Iterable[str], now: int) -> None:
        """Each service's credential, with the permissions this version gives it (again
        after an upgrade: a service that needs more than its old credential allowed)."""
        for service in services:
            self._write_user(
                service, self.issue(service_user(service), service_permissions(service), now)
            )

    def _write_user(self, user: str, issued: Issued) -> None:
        _write_secret(self.credentials(user), issued.text.encode())

    def issue(
        self, name: str, permissions: Permissions, now: int, org: str | None = None
    ) -> Issued:
        """A new user with these permissions (a fresh key each time): of ``org``'s own
        account, or of ``ALONGSIDE``."""
        user = new_key(nkeys.PREFIX_BYTE_USER)
        account = self._org_seed(org) if org is not None else self._seed("account")
        token = _jwt(
            account,
            public(user),
            name,
            now,
            {"type": "user", **_USER_LIMITS, **permissions.claims()},
        )
        return Issued(credentials_text(token, user.seed), public(user), now)

    def account_jwt(self, revocations: Mapping[str, int], now: int) -> str:
        """The account as the operator signs it: JetStream on, these users revoked (each
        credential of that key issued at or before the time given)."""
        nats: dict[str, object] = {
            "type": "account",
            "limits": {**_UNLIMITED, **_JETSTREAM},
            "exports": EXPORTS,
        }
        if revocations:
            nats["revocations"] = dict(revocations)
        return _jwt(self._seed("operator"), self.account_key, ACCOUNT_NAME, now, nats)


_USER_LIMITS = {"subs": -1, "data": -1, "payload": -1}

# What ``ALONGSIDE`` offers organisations' accounts, as services: an import is only ever
# written by the operator, for an organisation's own subjects (``ORG_IMPORTS``). A pull's
# messages are streamed replies.
EXPORTS = [
    {
        "name": "commands",
        "subject": "alongside.*.cmd.>",
        "type": "service",
        "response_type": "Singleton",
    },
    {
        "name": "consumer-next",
        "subject": "$JS.API.CONSUMER.MSG.NEXT.*.*",
        "type": "service",
        "response_type": "Stream",
    },
    {"name": "acks", "subject": "$JS.ACK.>", "type": "service", "response_type": "Singleton"},
]
ORG_IMPORTS = (
    ("commands", "alongside.{org}.cmd.>"),
    ("consumer-next", "$JS.API.CONSUMER.MSG.NEXT.{stream}.*"),
    ("acks", "$JS.ACK.{stream}.>"),
)


def _write_secret(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def server_config(auth: AuthDir, resolver_dir: Path, config_dir: Path) -> str:
    """The lines a nats-server configuration in ``config_dir`` needs to trust this auth
    folder. (nats-server reads an include relative to the including file, even when the
    path is absolute.)"""
    include = os.path.relpath(auth.conf.resolve(), config_dir.resolve())
    return (
        f"include {json.dumps(include)}\n"
        f"resolver: {{ type: full, dir: {json.dumps(str(resolver_dir))}, allow_delete: false }}\n"
    )
