#!/usr/bin/env python3
"""Recording stand-ins for the Juju hook tools, for running a packed charm's real `dispatch`.

Symlink this file under each tool's name (config-get, relation-set, status-set, …) into a
directory that goes first on the hook's PATH. Every tool reads and writes one JSON state file
($FAKE_JUJU_STATE, see `new_state`) under an flock, and appends every call, with its arguments,
stdin, output and exit code, as one JSON line to $FAKE_JUJU_CALLS. The tools answer as Juju 3's
do: `--format=json` (or `--format json`) prints JSON, anything else a plain rendering; unknown
flags and missing arguments exit 2 with Juju's "ERROR …" message.

Semantics kept from Juju:
  * relation-ids/relation-list only show relations the test marked as created;
  * relation-list excludes the local unit; `relation-list --app` names the remote application
    (the local one on a peer relation);
  * only the leader writes (or, off a peer relation, reads) its application bag; a unit writes
    only its own unit bag; unit bags carry Juju's private-address/ingress-address/egress-subnets;
  * relation-set --file reads a YAML (or JSON) map; "" deletes a key;
  * secret content goes through key#file=path arguments; secret-add prints the secret URI;
  * action-set keys must be lower-case with dashes (dots nest) and not Juju's reserved ones.
Relation data and unit state written by a hook are only kept if the dispatch exits 0: the harness
(test_charm.py) snapshots and restores them, as the unit agent commits them with the hook.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import sys
import time
from contextlib import contextmanager
from pathlib import Path

TOOL = os.path.basename(sys.argv[0])
STATE = Path(os.environ.get("FAKE_JUJU_STATE", "/nonexistent/state.json"))
CALLS = Path(os.environ.get("FAKE_JUJU_CALLS", "/dev/null"))

RESERVED_ACTION_KEYS = {"stdout", "stdout-encoding", "stderr", "stderr-encoding"}
ACTION_KEY = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$")
STATUSES = {"maintenance", "blocked", "waiting", "active"}
LOG_LEVELS = {"TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


class ToolError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def new_state(*, unit: str, config: dict, address: str, cidr: str, interface: str = "eth0") -> dict:
    """A fresh state for one unit: not leader, no relations, config as given (defaults applied)."""
    return {
        "unit": unit,
        "app": unit.split("/")[0],
        "leader": False,
        "config": dict(config),
        "address": address,
        "network": {
            "bind-addresses": [
                {
                    "mac-address": "02:00:00:00:00:01",
                    "interface-name": interface,
                    "addresses": [{"hostname": "", "value": address, "cidr": cidr}],
                    "macaddress": "02:00:00:00:00:01",
                    "interfacename": interface,
                }
            ],
            "egress-subnets": [f"{address}/32"],
            "ingress-addresses": [address],
        },
        "relations": {},
        "unit-state": {},
        "secrets": {},
        "status": {"unit": {"status": "unknown", "message": ""}, "application": {"status": "unknown", "message": ""}},
        "status-history": [],
        "workload-version": None,
        "opened-ports": [],
        "juju-log": [],
        "action": None,
        "resources": {},
    }


# ---- state and records ------------------------------------------------------------------------
@contextmanager
def locked_state():
    lock = open(f"{STATE}.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = json.loads(STATE.read_text())
        yield state
        tmp = STATE.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        os.replace(tmp, STATE)
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def record(args: list[str], stdin: str | None, stdout: str, code: int, stderr: str) -> None:
    entry = {
        "time": round(time.time(), 3),
        "tool": TOOL,
        "args": args,
        "dispatch": os.environ.get("JUJU_DISPATCH_PATH", ""),
        "rc": code,
    }
    if stdin:
        entry["stdin"] = stdin
    if stdout:
        entry["stdout"] = stdout if TOOL != "secret-get" else "<withheld>"
    if stderr:
        entry["stderr"] = stderr
    with open(CALLS, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps(entry) + "\n")
        fcntl.flock(f, fcntl.LOCK_UN)


# ---- argument parsing (Juju's gnuflag: flags may come anywhere before "--") -------------------
class Args:
    def __init__(self, argv: list[str], value_flags: set[str], bool_flags: set[str]) -> None:
        self.values: dict[str, str] = {}
        self.bools: set[str] = set()
        self.positional: list[str] = []
        i = 0
        while i < len(argv):
            arg = argv[i]
            if arg == "--":
                self.positional += argv[i + 1 :]
                break
            if arg.startswith("-") and arg != "-":
                name, eq, value = arg.lstrip("-").partition("=")
                if name in value_flags:
                    if not eq:
                        i += 1
                        if i >= len(argv):
                            raise ToolError(f"ERROR flag needs an argument: {arg}", 2)
                        value = argv[i]
                    self.values[name] = value
                elif name in bool_flags:
                    if eq and value not in ("true", "false"):
                        raise ToolError(f'ERROR invalid boolean value "{value}" for -{name}', 2)
                    if not eq or value == "true":
                        self.bools.add(name)
                    else:
                        self.bools.discard(name)
                        self.values[name] = "false"
                else:
                    raise ToolError(f"ERROR flag provided but not defined: {arg}", 2)
            else:
                self.positional.append(arg)
            i += 1

    def flag(self, name: str) -> bool:
        return name in self.bools

    def json(self) -> bool:
        return self.values.get("format", "smart") == "json"


def load_map(text: str | None) -> dict:
    """A --file argument: JSON, or YAML (what Juju reads) when PyYAML is at hand."""
    text = text or ""
    if text.strip() == "":
        return {}
    try:
        loaded = json.loads(text)
    except ValueError:
        import yaml

        loaded = yaml.safe_load(text)
    if not isinstance(loaded, dict):
        raise ToolError("ERROR expected a YAML map of settings", 2)
    return {str(k): "" if v is None else str(v) for k, v in loaded.items()}


def key_values(a: "Args", stdin: str) -> dict[str, str]:
    """The key=value pairs of relation-set / state-set: --file (or - for stdin) first, then the arguments."""
    changes: dict[str, str] = {}
    if "file" in a.values:
        changes.update(load_map(stdin if a.values["file"] == "-" else Path(a.values["file"]).read_text()))
    for pair in a.positional:
        k, eq, v = pair.partition("=")
        if not eq:
            raise ToolError(f'ERROR expected "key=value", got "{pair}"', 2)
        changes[k] = v
    return changes


def out(value, as_json: bool) -> str:
    if as_json:
        return json.dumps(value) + "\n"
    if value is None:
        return ""
    if isinstance(value, bool):
        return ("True" if value else "False") + "\n"
    if isinstance(value, str):
        return value + "\n"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "".join(f"{v}\n" for v in value)
    return json.dumps(value, indent=2) + "\n"  # Juju prints YAML; only JSON is asked for here


def relation(state: dict, rid: str) -> dict:
    rel = state["relations"].get(rid)
    if rel is None or not rel.get("created"):
        raise ToolError(f'ERROR invalid value "{rid}" for option -r: relation not found', 2)
    return rel


def relation_id_arg(args: Args, state: dict) -> str:
    rid = args.values.get("r") or args.values.get("relation") or os.environ.get("JUJU_RELATION_ID", "")
    if not rid:
        raise ToolError("ERROR no relation id specified", 2)
    if re.fullmatch(r"\d+", rid):  # Juju accepts a bare number
        rid = next((k for k in state["relations"] if k.split(":")[1] == rid), rid)
    return rid


def unit_bag_view(state: dict, owner: str, data: dict) -> dict:
    """Juju puts the unit's addresses into every unit bag."""
    if "/" not in owner:
        return dict(data)
    view = {"egress-subnets": f"{state['address']}/32", "ingress-address": state["address"], "private-address": state["address"]}
    view.update(data)
    return view


def read_content_args(pairs: list[str]) -> dict[str, str]:
    content: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq:
            raise ToolError(f'ERROR expected "key=value", got "{pair}"', 2)
        if key.endswith("#file"):
            key = key[: -len("#file")]
            value = Path(value).read_text()
        elif key.endswith("#base64"):
            import base64

            key = key[: -len("#base64")]
            value = base64.b64decode(value).decode()
        if not re.fullmatch(r"[a-z](?:-?[a-z0-9])*", key) or len(key) < 3:
            raise ToolError(f'ERROR invalid key "{key}"', 2)
        content[key] = value
    return content


def secret_ref(state: dict, ident: str | None, label: str | None) -> str:
    if ident:
        sid = ident if ident.startswith("secret:") else f"secret:{ident}"
        if sid not in state["secrets"]:
            raise ToolError(f'ERROR secret "{sid}" not found', 1)
        return sid
    if label:
        for sid, secret in state["secrets"].items():
            if secret.get("label") == label:
                return sid
    raise ToolError("ERROR secret not found", 1)


# ---- the tools ---------------------------------------------------------------------------------
def run_tool(argv: list[str], stdin: str | None) -> str:
    fmt = {"format"}
    if TOOL == "config-get":
        a = Args(argv, fmt, {"a", "all"})
        with locked_state() as s:
            if a.positional:
                return out(s["config"].get(a.positional[0]), a.json())
            return out(s["config"], a.json())
    if TOOL == "is-leader":
        a = Args(argv, fmt, set())
        with locked_state() as s:
            return out(bool(s["leader"]), a.json())
    if TOOL == "relation-ids":
        a = Args(argv, fmt, set())
        endpoint = a.positional[0] if a.positional else os.environ.get("JUJU_RELATION", "")
        with locked_state() as s:
            ids = [rid for rid, rel in s["relations"].items() if rel["endpoint"] == endpoint and rel.get("created")]
            return out(sorted(ids, key=lambda r: int(r.split(":")[1])), a.json())
    if TOOL == "relation-list":
        a = Args(argv, fmt | {"r", "relation"}, {"app"})
        with locked_state() as s:
            rel = relation(s, relation_id_arg(a, s))
            if a.flag("app"):
                return out(rel["remote-app"], a.json())
            return out([u for u in rel["units"] if u != s["unit"]], a.json())
    if TOOL == "relation-get":
        a = Args(argv, fmt | {"r", "relation"}, {"app"})
        with locked_state() as s:
            rel = relation(s, relation_id_arg(a, s))
            key = a.positional[0] if a.positional else "-"
            owner = a.positional[1] if len(a.positional) > 1 else os.environ.get("JUJU_REMOTE_UNIT", "")
            if not owner:
                raise ToolError("ERROR no unit or application specified", 2)
            if a.flag("app"):
                if owner == s["app"] and not s["leader"] and rel["remote-app"] != s["app"]:
                    raise ToolError("ERROR permission denied", 1)
            data = unit_bag_view(s, owner, rel["data"].get(owner, {}))
            return out(data if key == "-" else data.get(key), a.json())
    if TOOL == "relation-set":
        a = Args(argv, fmt | {"r", "relation", "file"}, {"app"})
        with locked_state() as s:
            rid = relation_id_arg(a, s)
            rel = relation(s, rid)
            changes = key_values(a, stdin)
            owner = s["app"] if a.flag("app") else s["unit"]
            if a.flag("app") and not s["leader"]:
                raise ToolError("ERROR cannot write relation settings: unit is not the leader", 1)
            bag = rel["data"].setdefault(owner, {})
            for k, v in changes.items():
                if v == "":
                    bag.pop(k, None)
                else:
                    bag[k] = v
            return ""
    if TOOL == "status-set":
        a = Args(argv, set(), {"application"})
        if not a.positional or a.positional[0] not in STATUSES:
            raise ToolError(f"ERROR invalid status {a.positional[0] if a.positional else ''!r}, expected one of {sorted(STATUSES)}", 2)
        target = "application" if a.flag("application") else "unit"
        message = " ".join(a.positional[1:])
        with locked_state() as s:
            if target == "application" and not s["leader"]:
                raise ToolError("ERROR setting application status: this unit is not the leader", 1)
            s["status"][target] = {"status": a.positional[0], "message": message}
            s["status-history"].append({"target": target, "status": a.positional[0], "message": message, "dispatch": os.environ.get("JUJU_DISPATCH_PATH", "")})
        return ""
    if TOOL == "status-get":
        a = Args(argv, fmt, {"application", "include-data"})
        with locked_state() as s:
            return out(s["status"]["application" if a.flag("application") else "unit"], a.json())
    if TOOL == "application-version-set":
        a = Args(argv, set(), set())
        if len(a.positional) != 1:
            raise ToolError("ERROR no version specified" if not a.positional else f"ERROR unrecognized args: {a.positional[1:]}", 2)
        with locked_state() as s:
            s["workload-version"] = a.positional[0]
        return ""
    if TOOL == "juju-log":
        a = Args(argv, {"l", "log-level", "format"}, {"debug"})
        level = a.values.get("l") or a.values.get("log-level") or "INFO"
        if level not in LOG_LEVELS:
            raise ToolError(f'ERROR invalid log level "{level}"', 2)
        if not a.positional:
            raise ToolError("ERROR no message specified", 2)
        with locked_state() as s:
            s["juju-log"].append({"level": level, "message": " ".join(a.positional), "dispatch": os.environ.get("JUJU_DISPATCH_PATH", "")})
        return ""
    if TOOL in ("open-port", "close-port"):
        a = Args(argv, {"endpoints", "format"}, set())
        if len(a.positional) != 1 or not re.fullmatch(r"(\d+(-\d+)?(/(tcp|udp))?|icmp)", a.positional[0]):
            raise ToolError(f"ERROR invalid port or range {a.positional}", 2)
        port = a.positional[0] if "/" in a.positional[0] or a.positional[0] == "icmp" else f"{a.positional[0]}/tcp"
        with locked_state() as s:
            if TOOL == "open-port" and port not in s["opened-ports"]:
                s["opened-ports"].append(port)
            if TOOL == "close-port" and port in s["opened-ports"]:
                s["opened-ports"].remove(port)
        return ""
    if TOOL == "opened-ports":
        a = Args(argv, fmt, {"endpoints"})
        with locked_state() as s:
            return out(s["opened-ports"], a.json())
    if TOOL == "network-get":
        a = Args(argv, fmt | {"r", "relation"}, {"bind-address", "ingress-address", "egress-subnets", "primary-address"})
        if not a.positional:
            raise ToolError("ERROR no arguments specified", 2)
        with locked_state() as s:
            return out(s["network"], a.json())
    if TOOL in ("action-get", "action-set", "action-fail", "action-log"):
        if not os.environ.get("JUJU_ACTION_NAME") or not os.environ.get("JUJU_DISPATCH_PATH", "").startswith("actions/"):
            raise ToolError(f"ERROR {TOOL} is only available in an action context", 1)
        with locked_state() as s:
            action = s["action"]
            if action is None:
                raise ToolError("ERROR no action is running", 1)
            if TOOL == "action-get":
                a = Args(argv, fmt, set())
                params = action["params"]
                return out(params if not a.positional else params.get(a.positional[0]), a.json())
            if TOOL == "action-set":
                a = Args(argv, set(), set())
                for pair in a.positional:
                    k, eq, v = pair.partition("=")
                    if not eq:
                        raise ToolError(f'ERROR argument "{pair}" must be of the form key...=value', 2)
                    if not ACTION_KEY.fullmatch(k) or k.split(".")[0] in RESERVED_ACTION_KEYS:
                        raise ToolError(f'ERROR key "{k}" must start and end with lowercase alphanumeric, and contain only lowercase alphanumeric, hyphens and periods', 2)
                    action["results"][k] = v
                return ""
            if TOOL == "action-fail":
                a = Args(argv, set(), set())
                action["failed"] = " ".join(a.positional) or "action failed without reason given, check action for errors"
                return ""
            a = Args(argv, set(), set())
            action["logs"].append(" ".join(a.positional))
            return ""
    if TOOL == "state-get":
        a = Args(argv, fmt, {"strict"})
        with locked_state() as s:
            if a.positional:
                if a.positional[0] not in s["unit-state"] and a.flag("strict"):
                    raise ToolError(f'ERROR "{a.positional[0]}" not found', 1)
                return out(s["unit-state"].get(a.positional[0]), a.json())
            return out(s["unit-state"], a.json())
    if TOOL == "state-set":
        a = Args(argv, {"file"}, set())
        changes = key_values(a, stdin)
        with locked_state() as s:
            for k, v in changes.items():
                if v == "":
                    s["unit-state"].pop(k, None)
                else:
                    s["unit-state"][k] = v
        return ""
    if TOOL == "state-delete":
        a = Args(argv, set(), set())
        if len(a.positional) != 1:
            raise ToolError("ERROR specify one key", 2)
        with locked_state() as s:
            s["unit-state"].pop(a.positional[0], None)
        return ""
    if TOOL == "secret-add":
        a = Args(argv, {"label", "description", "owner", "expire", "rotate", "file"}, set())
        content = read_content_args(a.positional)
        if not content:
            raise ToolError("ERROR missing secret value or filename", 2)
        with locked_state() as s:
            owner = a.values.get("owner", "application")
            if owner == "application" and not s["leader"]:
                raise ToolError("ERROR permission denied: only the leader can add application secrets", 1)
            sid = f"secret:{secrets.token_hex(10)}"
            s["secrets"][sid] = {
                "owner": owner,
                "label": a.values.get("label"),
                "description": a.values.get("description"),
                "revisions": {"1": content},
                "latest": 1,
                "grants": [],
            }
            return sid + "\n"
    if TOOL == "secret-get":
        a = Args(argv, fmt | {"label"}, {"refresh", "peek"})
        with locked_state() as s:
            sid = secret_ref(s, a.positional[0] if a.positional else None, a.values.get("label"))
            secret = s["secrets"][sid]
            content = secret["revisions"][str(secret["latest"])]
            key = a.positional[1] if len(a.positional) > 1 else None
            return out(content if key is None else content.get(key), a.json())
    if TOOL == "secret-set":
        a = Args(argv, {"label", "description", "owner", "expire", "rotate", "file"}, set())
        if not a.positional:
            raise ToolError("ERROR missing secret URI", 2)
        with locked_state() as s:
            sid = secret_ref(s, a.positional[0], None)
            secret = s["secrets"][sid]
            content = read_content_args(a.positional[1:])
            if content:
                secret["latest"] += 1
                secret["revisions"][str(secret["latest"])] = content
            for field in ("label", "description"):
                if field in a.values:
                    secret[field] = a.values[field]
        return ""
    if TOOL in ("secret-grant", "secret-revoke"):
        a = Args(argv, {"r", "relation", "unit", "app"}, set())
        if not a.positional:
            raise ToolError("ERROR missing secret URI", 2)
        with locked_state() as s:
            sid = secret_ref(s, a.positional[0], None)
            rid = relation_id_arg(a, s)
            relation(s, rid)
            grant = {"relation": rid, "unit": a.values.get("unit")}
            grants = s["secrets"][sid]["grants"]
            if TOOL == "secret-grant" and grant not in grants:
                grants.append(grant)
            if TOOL == "secret-revoke" and grant in grants:
                grants.remove(grant)
        return ""
    if TOOL == "secret-remove":
        a = Args(argv, {"revision"}, set())
        if not a.positional:
            raise ToolError("ERROR missing secret URI", 2)
        with locked_state() as s:
            sid = secret_ref(s, a.positional[0], None)
            if "revision" in a.values:
                s["secrets"][sid]["revisions"].pop(a.values["revision"], None)
            else:
                del s["secrets"][sid]
        return ""
    if TOOL == "resource-get":
        a = Args(argv, set(), set())
        if not a.positional:
            raise ToolError("ERROR missing resource name", 2)
        with locked_state() as s:
            path = s.get("resources", {}).get(a.positional[0])
        if path is None:
            raise ToolError(f'ERROR could not download resource: resource "{a.positional[0]}" not found', 1)
        return path
    raise ToolError(f"ERROR this stand-in does not implement {TOOL}", 1)


def main() -> int:
    argv = sys.argv[1:]
    stdin = None
    if not sys.stdin.isatty():
        try:
            stdin = sys.stdin.read()
        except OSError:
            stdin = None
    try:
        stdout = run_tool(argv, stdin)
        code, stderr = 0, ""
    except ToolError as e:
        stdout, code, stderr = "", e.code, str(e) + "\n"
    except Exception as e:  # a bug here must not look like a charm error
        stdout, code, stderr = "", 99, f"hook tool stand-in {TOOL} crashed: {e!r}\n"
    record(argv, stdin, stdout, code, stderr)
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
