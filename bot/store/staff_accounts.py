"""Staff accounts, their sessions, API tokens, set-password links, recovery codes and login backoff.

    hwbot:{staff}:account:<id>            hash   id, name, role (staff|admin), offices (comma-separated),
                                                 created_at, disabled_at, password (argon2id), password_at,
                                                 totp (base32 secret), totp_at, totp_last (last time step
                                                 used), feed (the account's ICS feed secret), link (digest
                                                 of its current set-password link), simulator ("1")
    hwbot:{staff}:names                   hash   display name -> id (names are unique: login by name)
    hwbot:{staff}:link:<digest>           string the account a set-password link is for (short TTL, taken once)
    hwbot:{staff}:session:<digest>        hash   a console session: account, stage, created, seen, client,
                                                 agent, csrf, office, totp_pending (TTL: its absolute end)
    hwbot:{staff}:sessions:<id>           set    the account's session digests (gone ones are dropped on read)
    hwbot:{staff}:token:<digest>          hash   an API token: account, id, created
    hwbot:{staff}:tokens:<id>             hash   token id -> digest, for listing and revoking
    hwbot:{staff}:recovery:<id>           set    digests of the account's unused recovery codes
    hwbot:{staff}:fail:<scope>:<who>      hash   failed logins: n, until (unix seconds of the app's clock);
                                                 scope `pair` (<account>|<address>), `account` or `address`
    hwbot:{staff}:tried:<address>         set    the account names that failed from an address (spraying)

Every key carries the hash tag `{staff}`, so all of them are in one Redis Cluster slot and every
multi-key step here (a Lua script, a MULTI, and the scripts that find the account key from a session
or a link) is one slot. That puts the whole account store on one node: it is a few keys per member of
staff, and a console request reads one session, so it is no load worth spreading.

Every secret a client holds (session id, API token, set-password link, recovery code) is stored only
as its SHA-256 digest (`digest`): each is 128+ random bits, so a plain hash is as good as a slow one,
and a copy of the database opens nothing. Passwords are hashed by the caller (argon2id). This module
only stores; the rules (lifetimes, backoff, who may do what) are `bot.staff.identity`'s.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import redis

from bot.store.errors import redis_errors

NAMES_KEY = "hwbot:{staff}:names"


def digest(secret: str) -> str:
    """SHA-256 hex of a random secret (a session id, token, link or recovery code): what is stored."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def account_key(account: str) -> str:
    return f"hwbot:{{staff}}:account:{account}"


def link_key(link_digest: str) -> str:
    return f"hwbot:{{staff}}:link:{link_digest}"


def session_key(session_digest: str) -> str:
    return f"hwbot:{{staff}}:session:{session_digest}"


def sessions_key(account: str) -> str:
    return f"hwbot:{{staff}}:sessions:{account}"


def token_key(token_digest: str) -> str:
    return f"hwbot:{{staff}}:token:{token_digest}"


def tokens_key(account: str) -> str:
    return f"hwbot:{{staff}}:tokens:{account}"


def recovery_key(account: str) -> str:
    return f"hwbot:{{staff}}:recovery:{account}"


def fail_key(scope: str, who: str) -> str:
    return f"hwbot:{{staff}}:fail:{scope}:{who}"


def tried_key(address: str) -> str:
    return f"hwbot:{{staff}}:tried:{address}"


# KEYS: account hash, names hash. ARGV: id, name, then field/value pairs. 1 created, 0 id taken, -1 name taken.
_CREATE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return -1 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
return 1
"""

# KEYS: account hash, the new link key. ARGV: id, new digest, ttl seconds, link key prefix.
# The account's previous link stops working: one link per account at a time.
_LINK_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local old = redis.call('HGET', KEYS[1], 'link')
if old then redis.call('DEL', ARGV[4] .. old) end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[3])
redis.call('HSET', KEYS[1], 'link', ARGV[2])
return 1
"""

# KEYS: link key, account hash prefix (ARGV[2]). ARGV: digest, account key prefix. Takes the link once.
_TAKE_LINK_LUA = """
local account = redis.call('GET', KEYS[1])
if not account then return false end
redis.call('DEL', KEYS[1])
local key = ARGV[2] .. account
if redis.call('HGET', key, 'link') == ARGV[1] then redis.call('HDEL', key, 'link') end
return account
"""

# KEYS: session hash. ARGV: account key prefix. The session's fields and its account's, in one round trip.
_SESSION_LUA = """
local session = redis.call('HGETALL', KEYS[1])
if #session == 0 then return {{}, {}} end
local account = ''
for i = 1, #session, 2 do if session[i] == 'account' then account = session[i + 1] end end
return {session, redis.call('HGETALL', ARGV[1] .. account)}
"""

# KEYS: account hash. ARGV: time step. 1 when the step is newer than the last one used (then kept).
_TOTP_STEP_LUA = """
local last = tonumber(redis.call('HGET', KEYS[1], 'totp_last') or '-1')
if tonumber(ARGV[1]) <= last then return 0 end
redis.call('HSET', KEYS[1], 'totp_last', ARGV[1])
return 1
"""

# KEYS: pair hash, account hash, tried set, address hash. ARGV: now, name tried, keep seconds, pair cap, account free
# failures, account cap, address free names, address cap, tried keep seconds.
# Each failure doubles the wait (1 s, 2 s, 4 s, ...) up to its cap; returns the longest `until`.
_FAIL_LUA = """
local now = tonumber(ARGV[1])
local function bump(key, free, cap)
  local n = redis.call('HINCRBY', key, 'n', 1)
  local untl = now
  if n > free then untl = now + math.min(2 ^ (n - free - 1), cap) end
  redis.call('HSET', key, 'until', tostring(untl))
  redis.call('EXPIRE', key, ARGV[3])
  return untl
end
local result = bump(KEYS[1], 0, tonumber(ARGV[4]))
result = math.max(result, bump(KEYS[2], tonumber(ARGV[5]), tonumber(ARGV[6])))
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[9])
local names = redis.call('SCARD', KEYS[3])
local free = tonumber(ARGV[7])
if names > free then
  local untl = now + math.min(2 ^ (names - free - 1), tonumber(ARGV[8]))
  redis.call('HSET', KEYS[4], 'until', tostring(untl))
  redis.call('EXPIRE', KEYS[4], ARGV[9])
  result = math.max(result, untl)
end
return tostring(result)
"""


class StaffAccountStore:
    """Redis side of staff identity (see the module doc for the keys)."""

    def __init__(self, client: redis.Redis):
        self.client = client
        self._create = client.register_script(_CREATE_LUA)
        self._link = client.register_script(_LINK_LUA)
        self._take_link = client.register_script(_TAKE_LINK_LUA)
        self._session = client.register_script(_SESSION_LUA)
        self._totp_step = client.register_script(_TOTP_STEP_LUA)
        self._fail = client.register_script(_FAIL_LUA)

    # -- accounts ---------------------------------------------------------------------------------

    def create(self, account: dict[str, str]) -> int:
        """Store a new account: 1 created, 0 the id is taken, -1 the name is taken."""
        pairs = [part for name, value in account.items() for part in (name, value)]
        with redis_errors("cannot create staff account"):
            return int(self._create(keys=[account_key(account["id"]), NAMES_KEY],
                                    args=[account["id"], account["name"], *pairs]))

    def get(self, account: str) -> dict[str, str] | None:
        with redis_errors("cannot read staff account"):
            found = self.client.hgetall(account_key(account))
        return found or None

    def id_for_name(self, name: str) -> str | None:
        with redis_errors("cannot read staff account"):
            return self.client.hget(NAMES_KEY, name)

    def all(self) -> list[dict[str, str]]:
        """Every account, in name order."""
        with redis_errors("cannot list staff accounts"):
            ids = self.client.hvals(NAMES_KEY)
            pipe = self.client.pipeline(transaction=False)
            for account in ids:
                pipe.hgetall(account_key(account))
            found = [fields for fields in pipe.execute() if fields]
        return sorted(found, key=lambda fields: (fields.get("name", ""), fields.get("id", "")))

    def update(self, account: str, fields: dict[str, str], *, remove: tuple[str, ...] = ()) -> None:
        with redis_errors("cannot update staff account"):
            pipe = self.client.pipeline(transaction=True)
            if fields:
                pipe.hset(account_key(account), mapping=fields)
            if remove:
                pipe.hdel(account_key(account), *remove)
            pipe.execute()

    def claim_totp_step(self, account: str, step: int) -> bool:
        """Record that the TOTP code of time step `step` was used; False when it (or a later one) was."""
        with redis_errors("cannot check TOTP code"):
            return bool(self._totp_step(keys=[account_key(account)], args=[step]))

    # -- set-password links -----------------------------------------------------------------------

    def set_link(self, account: str, link_digest: str, ttl_seconds: int) -> bool:
        """Make `link_digest` the account's one set-password link (the previous one stops working)."""
        with redis_errors("cannot store set-password link"):
            return bool(self._link(keys=[account_key(account), link_key(link_digest)],
                                   args=[account, link_digest, ttl_seconds, link_key("")]))

    def link_account(self, link_digest: str) -> str | None:
        """The account a link is for, without using it up."""
        with redis_errors("cannot read set-password link"):
            return self.client.get(link_key(link_digest))

    def take_link(self, link_digest: str) -> str | None:
        """Use a link up: its account, or None when it was used, replaced or expired."""
        with redis_errors("cannot use set-password link"):
            return self._take_link(keys=[link_key(link_digest)], args=[link_digest, account_key("")])

    # -- sessions ---------------------------------------------------------------------------------

    def create_session(self, session_digest: str, fields: dict[str, str], ttl_seconds: int) -> None:
        with redis_errors("cannot store session"):
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(session_key(session_digest), mapping=fields)
            pipe.expire(session_key(session_digest), max(ttl_seconds, 1))
            pipe.sadd(sessions_key(fields["account"]), session_digest)
            pipe.execute()

    def session(self, session_digest: str) -> tuple[dict[str, str], dict[str, str]]:
        """(session fields, its account's fields) in one round trip; empty dicts when gone."""
        with redis_errors("cannot read session"):
            session, account = self._session(keys=[session_key(session_digest)], args=[account_key("")])
        return _pairs(session), _pairs(account)

    def touch_session(self, session_digest: str, fields: dict[str, str]) -> None:
        with redis_errors("cannot update session"):
            self.client.hset(session_key(session_digest), mapping=fields)

    def drop_session(self, session_digest: str, account: str) -> None:
        with redis_errors("cannot end session"):
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(session_key(session_digest))
            pipe.srem(sessions_key(account), session_digest)
            pipe.execute()

    def sessions_of(self, account: str) -> list[tuple[str, dict[str, str]]]:
        """(digest, fields) of the account's live sessions; the ones gone are forgotten."""
        with redis_errors("cannot list sessions"):
            digests = sorted(self.client.smembers(sessions_key(account)))
            pipe = self.client.pipeline(transaction=False)
            for session_digest in digests:
                pipe.hgetall(session_key(session_digest))
            found = pipe.execute()
            gone = [d for d, fields in zip(digests, found) if not fields]
            if gone:
                self.client.srem(sessions_key(account), *gone)
        return [(d, fields) for d, fields in zip(digests, found) if fields]

    def drop_sessions(self, account: str) -> int:
        """End every session of the account; how many there were."""
        with redis_errors("cannot end sessions"):
            digests = self.client.smembers(sessions_key(account))
            pipe = self.client.pipeline(transaction=True)
            for session_digest in digests:
                pipe.delete(session_key(session_digest))
            pipe.delete(sessions_key(account))
            ended = pipe.execute()
        return sum(ended[:-1])

    # -- API tokens -------------------------------------------------------------------------------

    def add_token(self, account: str, token_id: str, token_digest: str, created: str) -> None:
        with redis_errors("cannot store API token"):
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(token_key(token_digest), mapping={"account": account, "id": token_id, "created": created})
            pipe.hset(tokens_key(account), token_id, json.dumps({"digest": token_digest, "created": created}))
            pipe.execute()

    def token(self, token_digest: str) -> dict[str, str] | None:
        with redis_errors("cannot read API token"):
            return self.client.hgetall(token_key(token_digest)) or None

    def tokens_of(self, account: str) -> dict[str, dict[str, str]]:
        """token id -> {"digest", "created"}."""
        with redis_errors("cannot list API tokens"):
            raw = self.client.hgetall(tokens_key(account))
        return {token_id: json.loads(value) for token_id, value in sorted(raw.items())}

    def revoke_token(self, account: str, token_id: str) -> bool:
        with redis_errors("cannot revoke API token"):
            raw = self.client.hget(tokens_key(account), token_id)
            if raw is None:
                return False
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(token_key(json.loads(raw)["digest"]))
            pipe.hdel(tokens_key(account), token_id)
            pipe.execute()
        return True

    # -- recovery codes ---------------------------------------------------------------------------

    def set_recovery(self, account: str, digests: list[str]) -> None:
        with redis_errors("cannot store recovery codes"):
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(recovery_key(account))
            if digests:
                pipe.sadd(recovery_key(account), *digests)
            pipe.execute()

    def use_recovery(self, account: str, code_digest: str) -> bool:
        """True once per code: SREM is the single use."""
        with redis_errors("cannot check recovery code"):
            return bool(self.client.srem(recovery_key(account), code_digest))

    def recovery_left(self, account: str) -> int:
        with redis_errors("cannot count recovery codes"):
            return int(self.client.scard(recovery_key(account)))

    # -- failed logins ----------------------------------------------------------------------------

    def blocked_until(self, pair: str, account: str, address: str) -> float:
        """The latest `until` of the three counters (0 when none)."""
        with redis_errors("cannot read login backoff"):
            pipe = self.client.pipeline(transaction=False)
            pipe.hget(fail_key("pair", pair), "until")
            pipe.hget(fail_key("account", account), "until")
            pipe.hget(fail_key("address", address), "until")
            values = pipe.execute()
        return max((float(value) for value in values if value), default=0.0)

    def record_failure(self, pair: str, account: str, address: str, name: str, *, now: float, keep_seconds: int,
                       pair_cap: int, account_free: int, account_cap: int, address_free: int, address_cap: int,
                       address_keep_seconds: int) -> float:
        """Count a failed attempt on the three counters; the time until which the next one is refused."""
        with redis_errors("cannot record login failure"):
            until = self._fail(
                keys=[fail_key("pair", pair), fail_key("account", account), tried_key(address),
                      fail_key("address", address)],
                args=[repr(now), name, keep_seconds, pair_cap, account_free, account_cap, address_free,
                      address_cap, address_keep_seconds])
        return float(until)

    def clear_failures(self, pair: str, account: str) -> None:
        with redis_errors("cannot clear login backoff"):
            self.client.delete(fail_key("pair", pair), fail_key("account", account))


def _pairs(flat: list[Any]) -> dict[str, str]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat) - 1, 2)}
