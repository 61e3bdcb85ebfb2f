"""JSON Schemas of the API's bodies, shared by the route table, the request validation and
the OpenAPI document (``#/components/schemas/<name>``)."""

from __future__ import annotations

from typing import Any

from hub.web.auth import ROLES

Schema = dict[str, Any]

STR: Schema = {"type": "string"}
NSTR: Schema = {"type": ["string", "null"]}
INT: Schema = {"type": "integer"}
NINT: Schema = {"type": ["integer", "null"]}
NNUM: Schema = {"type": ["number", "null"]}
BOOL: Schema = {"type": "boolean"}
DT: Schema = {"type": "string", "format": "date-time"}
NDT: Schema = {"type": ["string", "null"], "format": "date-time"}
OBJ: Schema = {"type": "object"}
TEXT2: Schema = {
    "type": "object",
    "required": ["zh", "en"],
    "properties": {"zh": STR, "en": STR},
}

IDENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
USER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
EVENT_STATES = ("new", "acknowledged", "closed")
DEVICE_STATES = ("online", "degraded", "offline", "unknown")


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: list[str], /, **props: Schema) -> Schema:
    return {"type": "object", "required": required, "properties": props}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


COMPONENTS: dict[str, Schema] = {
    "Error": obj(["error", "message"], error=STR, message=STR, details=array(STR)),
    "Me": obj(
        ["name", "role", "via", "csrf_token"],
        name=STR,
        role={"enum": list(ROLES)},
        via={"enum": ["session", "token"]},
        csrf_token=NSTR,
    ),
    "Finding": obj(["check", "zh", "en", "warning"], check=STR, zh=STR, en=STR, warning=BOOL),
    "Device": obj(
        [
            "id",
            "name",
            "type",
            "floor",
            "zone",
            "role",
            "required",
            "parent",
            "state",
            "since",
            "reason",
            "last_seen",
            "latency_ms",
            "clock_offset_s",
            "video",
            "findings",
            "last_probe_at",
            "thumbnail_url",
            "test_mode_until",
        ],
        id=STR,
        name=STR,
        type=STR,
        floor=NSTR,
        zone=NSTR,
        role=NSTR,
        required=BOOL,
        parent=NSTR,
        state={"enum": list(DEVICE_STATES)},
        since=NDT,
        reason=STR,
        last_seen=NDT,
        latency_ms=NNUM,
        clock_offset_s=NNUM,
        video=NSTR,
        findings=array(ref("Finding")),
        last_probe_at=NDT,
        thumbnail_url=NSTR,
        test_mode_until=NDT,
    ),
    "DeviceList": obj(["items", "counts"], items=array(ref("Device")), counts=OBJ),
    "Probe": obj(
        ["id", "at", "ok", "latency_ms", "detail"],
        id=INT,
        at=DT,
        ok=BOOL,
        latency_ms=NNUM,
        detail=OBJ,
    ),
    "StateChange": obj(["at", "state", "reason"], at=DT, state=STR, reason=STR),
    "ProbeNow": obj(["device_id", "requested"], device_id=STR, requested=BOOL, result=OBJ),
    "CameraRef": obj(["id", "name"], id=STR, name=STR),
    "Event": obj(
        [
            "event_id",
            "seq",
            "kind",
            "kind_text",
            "category",
            "priority",
            "device_id",
            "device_name",
            "floor",
            "zone",
            "occurred_at",
            "received_at",
            "state",
            "state_at",
            "state_by",
            "state_via",
            "disposition",
            "note",
            "test_mode",
            "receipted_at",
            "receipted_by",
            "cameras",
            "text",
        ],
        event_id=STR,
        seq=INT,
        kind=STR,
        kind_text=TEXT2,
        category={"enum": ["alarm", "fault", "info"]},
        priority={"type": "integer", "minimum": 1, "maximum": 4},
        device_id=NSTR,
        device_name=NSTR,
        floor=NSTR,
        zone=NSTR,
        occurred_at=DT,
        received_at=DT,
        state={"enum": list(EVENT_STATES)},
        state_at=NDT,
        state_by=NSTR,
        state_via=NSTR,
        disposition=NSTR,
        note=NSTR,
        test_mode=BOOL,
        first_published_at=NDT,
        receipted_at=NDT,
        receipted_by=NSTR,
        cameras=array(ref("CameraRef")),
        text=TEXT2,
    ),
    "EventPage": obj(
        ["items", "total", "limit", "offset", "next_offset"],
        items=array(ref("Event")),
        total=INT,
        limit=INT,
        offset=INT,
        next_offset=NINT,
    ),
    "Snapshot": obj(
        [
            "id",
            "event_id",
            "camera_id",
            "camera_name",
            "taken_at",
            "content_type",
            "bytes",
            "sha256",
            "url",
        ],
        id=INT,
        event_id=STR,
        camera_id=STR,
        camera_name=STR,
        taken_at=DT,
        content_type=STR,
        bytes=INT,
        sha256=STR,
        url=STR,
    ),
    "EventStory": obj(
        [
            "event",
            "message",
            "updates",
            "states",
            "linkage",
            "snapshots",
            "notes",
            "receipt",
            "timeline",
        ],
        event=ref("Event"),
        message=OBJ,
        updates=array(obj(["update_seq", "at", "message"], update_seq=INT, at=DT, message=OBJ)),
        states=array(OBJ),
        linkage=array(OBJ),
        snapshots=array(ref("Snapshot")),
        notes=array(obj(["at", "by", "text"], at=DT, by=STR, text=STR)),
        receipt={"oneOf": [{"type": "null"}, obj(["at", "by"], at=DT, by=NSTR)]},
        timeline=array(obj(["at", "what", "by", "detail"], at=DT, what=STR, by=STR, detail=OBJ)),
    ),
    "EventAction": obj(
        ["event_id", "state", "changed"],
        event_id=STR,
        state={"enum": list(EVENT_STATES)},
        changed=BOOL,
    ),
    "Note": obj(["event_id", "at", "by", "text"], event_id=STR, at=DT, by=STR, text=STR),
    "Compliance": {
        "type": "object",
        "required": ["overall", "at", "rules", "counts"],
        "properties": {
            "overall": STR,
            "at": DT,
            "counts": OBJ,
            "rules": array(
                {
                    "type": "object",
                    "required": ["rule", "status"],
                    "properties": {"rule": STR, "status": STR, "since": NSTR},
                }
            ),
        },
    },
    "Record": obj(
        [
            "id",
            "kind",
            "at",
            "title",
            "owner",
            "due_at",
            "closed_at",
            "expires_at",
            "rule_id",
            "created_by",
            "detail",
            "overdue",
        ],
        id=INT,
        kind={"enum": ["drill", "training", "hazard", "review", "attestation"]},
        at=DT,
        title=STR,
        owner=NSTR,
        due_at=NDT,
        closed_at=NDT,
        expires_at=NDT,
        rule_id=NSTR,
        created_by=STR,
        detail=OBJ,
        overdue=BOOL,
    ),
    "RecordList": obj(["items"], items=array(ref("Record"))),
    "Created": obj(["id"], id=INT),
    "TestMode": obj(["target", "until"], target=STR, until=DT),
    "TestModeList": obj(["items"], items=array(ref("TestMode"))),
    "User": obj(
        ["name", "role", "created_at", "disabled", "failed_logins", "locked_until"],
        name=STR,
        role={"enum": list(ROLES)},
        created_at=DT,
        disabled=BOOL,
        failed_logins=INT,
        locked_until=NDT,
    ),
    "UserList": obj(["items"], items=array(ref("User"))),
    "Token": obj(
        ["id", "user", "name", "created_at", "last_used_at", "revoked_at"],
        id=INT,
        user=STR,
        name=STR,
        created_at=DT,
        last_used_at=NDT,
        revoked_at=NDT,
    ),
    "TokenList": obj(["items"], items=array(ref("Token"))),
    "NewToken": obj(["id", "name", "user", "token"], id=INT, name=STR, user=STR, token=STR),
    "AuditEntry": obj(
        ["id", "at", "actor", "action", "subject", "detail", "hash"],
        id=INT,
        at=DT,
        actor=STR,
        action=STR,
        subject=STR,
        detail=OBJ,
        hash=STR,
    ),
    "AuditList": obj(["items"], items=array(ref("AuditEntry"))),
    "Health": obj(["status"], status={"enum": ["ok"]}),
    "Ready": obj(
        ["ready", "store", "police"],
        ready=BOOL,
        store=obj(["healthy", "error"], healthy=BOOL, error=STR),
        police=obj(
            ["connected", "pending", "oldest_pending_s", "last_error"],
            connected=BOOL,
            pending=NINT,
            oldest_pending_s=NNUM,
            last_error=STR,
        ),
    ),
}
