"""The policy file: a VW snapshot with what is needed to trust and load it. Pure.

One JSON object, so it can be downloaded, inspected, diffed and posted back as it is:

    {"format": "banditroute-policy", "version": 1, "vw_args": [...], "sha256": "<hex of the model>",
     "model": "<base64 VW bytes>", "learned_seq": n, "cost_weight": w, "latency_weight": w,
     "created": unix_ts, "source": "service" | "replay-log"}

`GET /admin/policy` and `banditroute replay-log` write it; `POST /admin/policy` reads it.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

FORMAT = "banditroute-policy"
VERSION = 1


class PolicyFileError(ValueError):
    """Not a policy file, or one whose model does not match its checksum."""


@dataclass(frozen=True, slots=True)
class PolicyFile:
    vw_args: list[str]
    model: bytes
    learned_seq: int
    cost_weight: float
    latency_weight: float
    created: float
    source: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.model).hexdigest()

    def dumps(self) -> bytes:
        return orjson.dumps(
            {
                "format": FORMAT,
                "version": VERSION,
                "vw_args": self.vw_args,
                "sha256": self.sha256,
                "model": base64.b64encode(self.model).decode(),
                "learned_seq": self.learned_seq,
                "cost_weight": self.cost_weight,
                "latency_weight": self.latency_weight,
                "created": self.created,
                "source": self.source,
            }
        )

    def describe(self) -> dict[str, Any]:
        """Everything but the model bytes."""
        return {
            "sha256": self.sha256,
            "bytes": len(self.model),
            "vw_args": self.vw_args,
            "learned_seq": self.learned_seq,
            "cost_weight": self.cost_weight,
            "latency_weight": self.latency_weight,
            "created": self.created,
            "source": self.source,
        }


def loads(data: bytes | dict[str, Any]) -> PolicyFile:
    try:
        obj = orjson.loads(data) if isinstance(data, bytes | str) else data
    except orjson.JSONDecodeError:
        raise PolicyFileError("not a policy file: not JSON") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or obj.get("version") != VERSION:
        raise PolicyFileError(f"not a policy file: expected format {FORMAT!r} version {VERSION}")
    args, sha, encoded = obj.get("vw_args"), obj.get("sha256"), obj.get("model")
    if not (isinstance(args, list) and all(isinstance(a, str) for a in args)):
        raise PolicyFileError("vw_args must be a list of strings")
    if not isinstance(encoded, str) or not isinstance(sha, str):
        raise PolicyFileError("model and sha256 must be strings")
    try:
        model = base64.b64decode(encoded, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII characters (found by the schemathesis fuzz test)
        raise PolicyFileError("model is not valid base64") from None
    if hashlib.sha256(model).hexdigest() != sha:
        raise PolicyFileError("the model does not match its sha256")
    try:
        return PolicyFile(
            args,
            model,
            int(obj.get("learned_seq", 0)),
            float(obj.get("cost_weight", 0.0)),
            float(obj.get("latency_weight", 0.0)),
            float(obj.get("created", 0.0)),
            str(obj.get("source", "")),
        )
    except (TypeError, ValueError):
        raise PolicyFileError("learned_seq, cost_weight, latency_weight and created must be numbers") from None
