"""A Juju model for several charm units on the test bed: the controller's part of the hook contract.

Each unit keeps its own hook-tool state file (juju_hooktools.py, through test_charm.JujuUnit); this
model is the one store they share: relations (their units and every bag) and secrets (owned by an
application, granted per relation and unit). Before a dispatch it writes the unit's view into the
unit's state (leadership, the relations the unit is in, the secrets it owns or was granted); after a
successful dispatch it takes back what the unit may write (its own bag, the app bag when leader, the
secrets its application owns). Like Juju it then fires relation-changed on every unit that has not
seen a remote bag's latest content, until nothing changes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from test_charm import Dispatch, JujuUnit


def app_of(unit: str) -> str:
    return unit.split("/")[0]


@dataclass
class Relation:
    id: int
    ends: dict[str, str]  # application -> its endpoint
    units: list[str] = field(default_factory=list)
    data: dict[str, dict[str, str]] = field(default_factory=dict)  # owner (unit or application) -> bag
    leaving: set[str] = field(default_factory=set)  # units running their departure hooks

    @property
    def peer(self) -> bool:
        return len(self.ends) == 1

    def remote_app(self, app: str) -> str:
        return app if self.peer else next(a for a in self.ends if a != app)

    def rid(self, app: str) -> str:
        return f"{self.ends[app]}:{self.id}"


class ModelUnit(JujuUnit):
    """A JujuUnit whose every dispatch goes through the shared model."""

    model: "JujuModel"

    def dispatch(self, dispatch_path: str, extra_env: dict[str, str] | None = None, timeout: float = 900) -> Dispatch:
        self.model.sync_in(self)
        d = super().dispatch(dispatch_path, extra_env, timeout)
        if d.rc == 0:
            self.model.sync_out(self)
        return d

    @property
    def app(self) -> str:
        return app_of(self.unit)


class JujuModel:
    def __init__(self) -> None:
        self.units: dict[str, ModelUnit] = {}
        self.leaders: dict[str, str] = {}
        self.relations: dict[int, Relation] = {}
        self.secrets: dict[str, dict] = {}  # id -> the stand-in's secret record plus "app" (the owner)
        self.seen: dict[tuple[str, int], str] = {}  # (unit, relation) -> the remote data it last saw
        self._next_id = 0

    # ---- the store ------------------------------------------------------------------------------
    def _visible(self, unit: ModelUnit, rel: Relation) -> bool:
        return unit.app in rel.ends and (unit.unit in rel.units or unit.unit in rel.leaving)

    def sync_in(self, unit: ModelUnit) -> None:
        def write(s: dict) -> None:
            s["leader"] = self.leaders.get(unit.app) == unit.unit
            relations = {}
            for rel in self.relations.values():
                if not self._visible(unit, rel):
                    continue
                remote = rel.remote_app(unit.app)
                members = [u for u in rel.units if app_of(u) == remote or (rel.peer and u != unit.unit)]
                relations[rel.rid(unit.app)] = {
                    "endpoint": rel.ends[unit.app], "remote-app": remote, "units": [unit.unit, *members], "created": True,
                    "data": json.loads(json.dumps(rel.data)),
                }
            s["relations"] = relations
            s["secrets"] = {
                sid: {k: v for k, v in sec.items() if k != "app"}
                for sid, sec in self.secrets.items()
                if sec["app"] == unit.app or any(g.get("unit") in (unit.unit, None) and self._grant_reaches(g, unit) for g in sec["grants"])
            }
        unit.update_state(write)

    def _grant_reaches(self, grant: dict, unit: ModelUnit) -> bool:
        rel = self.relations.get(int(grant["relation"].split(":")[1]))
        return rel is not None and unit.unit in rel.units + list(rel.leaving)

    def sync_out(self, unit: ModelUnit) -> None:
        s = unit.state()
        leader = self.leaders.get(unit.app) == unit.unit
        for rid, view in s["relations"].items():
            rel = self.relations[int(rid.split(":")[1])]
            rel.data[unit.unit] = dict(view["data"].get(unit.unit, {}))
            if leader:
                rel.data[unit.app] = dict(view["data"].get(unit.app, {}))
        if leader:
            owned = {sid for sid, sec in self.secrets.items() if sec["app"] == unit.app}
            for sid in owned - set(s["secrets"]):
                del self.secrets[sid]
            for sid, sec in s["secrets"].items():
                if sid in owned or sid not in self.secrets:
                    self.secrets[sid] = {**sec, "app": unit.app}

    # ---- what Juju does -------------------------------------------------------------------------
    def add(self, unit: ModelUnit) -> None:
        unit.model = self
        self.units[unit.unit] = unit

    def relate(self, ends: dict[str, str]) -> Relation:
        rel = Relation(self._next_id, dict(ends))
        self._next_id += 1
        self.relations[rel.id] = rel
        return rel

    def join(self, unit: ModelUnit, rel: Relation) -> list[Dispatch]:
        """The unit enters the relation: created on it, then joined both ways with every unit already there."""
        others = [u for u in rel.units if rel.peer or app_of(u) != unit.app]
        rel.units.append(unit.unit)
        rel.data.setdefault(unit.unit, {})
        out = [self.hook(unit, rel, "relation-created")]
        for other in others:
            out.append(self.hook(unit, rel, "relation-joined", remote=other))
            if other in self.units:  # a unit of an application this test only plays as relation data has no hooks
                out.append(self.hook(self.units[other], rel, "relation-joined", remote=unit.unit))
        return out

    def depart(self, unit: ModelUnit, rel: Relation) -> list[Dispatch]:
        """The unit leaves: departed on the others (the leader first), then on the unit itself."""
        rel.units.remove(unit.unit)
        rel.leaving.add(unit.unit)
        others = sorted((u for u in rel.units if rel.peer or app_of(u) != unit.app), key=lambda u: self.leaders.get(app_of(u)) != u)
        out = [self.hook(self.units[o], rel, "relation-departed", remote=unit.unit, departing=unit.unit) for o in others]
        for other in others:
            out.append(self.hook(unit, rel, "relation-departed", remote=other, departing=unit.unit))
        if not rel.peer:
            out.append(self.hook(unit, rel, "relation-broken"))
        rel.leaving.discard(unit.unit)
        rel.data.pop(unit.unit, None)
        return out

    def hook(self, unit: ModelUnit, rel: Relation, kind: str, remote: str = "", departing: str = "") -> Dispatch:
        endpoint = rel.ends[unit.app]
        extra = {"JUJU_RELATION": endpoint, "JUJU_RELATION_ID": rel.rid(unit.app), "JUJU_REMOTE_APP": rel.remote_app(unit.app)}
        if remote:
            extra["JUJU_REMOTE_UNIT"] = remote
        if departing:
            extra["JUJU_DEPARTING_UNIT"] = departing
        d = unit.hook(f"{endpoint}-{kind}", **extra)
        self.seen[(unit.unit, rel.id)] = self._remote_view(unit, rel)
        return d

    def _remote_view(self, unit: ModelUnit, rel: Relation) -> str:
        """The bags whose changes Juju reports to this unit: the other units' (remote units only off a
        peer relation) and the remote application's (on a peer relation, the app bag unless it wrote it)."""
        remote = rel.remote_app(unit.app)
        i_lead = self.leaders.get(unit.app) == unit.unit

        def reported(owner: str) -> bool:
            if "/" in owner:
                return owner != unit.unit and app_of(owner) == remote
            return owner == remote and not (rel.peer and i_lead)

        return json.dumps({owner: bag for owner, bag in rel.data.items() if reported(owner)}, sort_keys=True)

    def settle(self, max_rounds: int = 40) -> list[Dispatch]:
        """relation-changed on each unit whose remote bags changed since it last saw them, until quiet."""
        out: list[Dispatch] = []
        for _ in range(max_rounds):
            fired = False
            for unit in list(self.units.values()):
                for rel in list(self.relations.values()):
                    if unit.unit not in rel.units:
                        continue
                    view = self._remote_view(unit, rel)
                    if self.seen.get((unit.unit, rel.id)) == view:
                        continue
                    before = json.loads(self.seen.get((unit.unit, rel.id)) or "{}")
                    changed = [o for o, bag in json.loads(view).items() if before.get(o) != bag]
                    remote = next((o for o in changed if "/" in o), "")
                    d = self.hook(unit, rel, "relation-changed", remote=remote)
                    out.append(d)
                    assert d.rc == 0, unit.report()
                    fired = True
            if not fired:
                return out
        raise AssertionError(f"relation data did not settle in {max_rounds} rounds")

    def until_active(self, units: list[ModelUnit], timeout: float = 600, interval: float = 5) -> float:
        """update-status (Juju's periodic hook) on every unit not yet Active, until all are; returns the seconds taken."""
        started = time.monotonic()
        while True:
            waiting = [u for u in units if u.unit_status() != {"status": "active", "message": "Ready"}]
            if not waiting:
                return time.monotonic() - started
            assert time.monotonic() - started < timeout, "units not Active in time:\n" + "\n".join(u.report() for u in waiting)
            for unit in waiting:
                d = unit.hook("update-status")
                assert d.rc == 0, unit.report()
            self.settle()
            time.sleep(interval)
