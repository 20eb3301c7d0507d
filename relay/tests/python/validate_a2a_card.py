#!/usr/bin/env python3
"""Validate one A2A v1.0 AgentCard (JSON on stdin) with the official a2a-sdk.

Strict: the JSON is parsed into the SDK's v1.0 protobuf type `a2a.types.AgentCard`
(`lf.a2a.v1.AgentCard`) with `google.protobuf.json_format.Parse(..., ignore_unknown_fields=False)`,
so unknown keys, wrong types and v0.3-only keys (`url`, `preferredTransport`, ...) are errors.
(The SDK's own client resolver is more lenient: it maps v0.3 keys and ignores unknown fields.)
Then `a2a.utils.proto_utils.validate_proto_required_fields` checks every field the spec marks
REQUIRED (recursively) is present and non-empty.

Exit 0 with a one-line summary on stdout, or exit 1 with the error on stderr.
Requirements: requirements-test.txt at the repository root.
"""

import sys

from google.protobuf.json_format import MessageToDict, Parse, ParseError

from a2a.types import AgentCard
from a2a.utils.errors import InvalidParamsError
from a2a.utils.proto_utils import validate_proto_required_fields


def main() -> int:
    text = sys.stdin.read()
    try:
        card = Parse(text, AgentCard(), ignore_unknown_fields=False)
    except ParseError as e:
        print(f"a2a AgentCard parse failed: {e}", file=sys.stderr)
        return 1
    try:
        validate_proto_required_fields(card)
    except InvalidParamsError as e:
        errors = (getattr(e, "data", None) or {}).get("errors", [])
        detail = "; ".join(f"{x['field']}: {x['message']}" for x in errors) or str(e)
        print(f"a2a AgentCard required fields: {detail}", file=sys.stderr)
        return 1
    # Round-trip sanity: the parsed card re-serializes (catches nothing silently dropped).
    MessageToDict(card)
    bindings = ",".join(i.protocol_binding for i in card.supported_interfaces)
    exts = ",".join(x.uri for x in card.capabilities.extensions) or "-"
    print(
        f"ok: AgentCard {card.name!r} v{card.version} "
        f"interfaces={len(card.supported_interfaces)} [{bindings}] "
        f"skills={len(card.skills)} extensions=[{exts}]"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
